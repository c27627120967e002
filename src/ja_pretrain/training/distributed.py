"""Process-group setup for one process or a torchrun launch (one node or many), and the layout
of a global batch over nodes and ranks.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and GROUP_RANK (the node's rank);
ranks are numbered node by node, so node n holds ranks n*P ... n*P+P-1 for P processes per node.
GPUs use NCCL, CPUs gloo. Without torchrun everything works as a single process.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ja_pretrain.config.parameters import ModelParameters
from ja_pretrain.errors import UserError
from ja_pretrain.utils.devices import resolve_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    device: torch.device = torch.device("cpu")
    # A gloo group over the same ranks for the host's own decisions (stop now?), so that asking
    # does not wait for the GPU's queue as a NCCL collective would. None: the default group.
    control_group: Any = None

    @property
    def num_nodes(self) -> int:
        return self.world_size // self.local_world_size

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def setup_distributed(device: str = "auto", node_rank: int | None = None, local_rank: int | None = None) -> DistContext:
    """Join the torchrun process group if there is one; pick this process's device.

    `node_rank`/`local_rank` are the seed's flags; torchrun's environment wins, and a flag that
    contradicts it is an error rather than a silent mismatch of batch sizes.
    """
    world_size = _env_int("WORLD_SIZE") or 1
    rank = _env_int("RANK") or 0
    env_local = _env_int("LOCAL_RANK")
    env_node = _env_int("GROUP_RANK")
    local_world = _env_int("LOCAL_WORLD_SIZE") or 1
    for flag, given, env, env_name in (("--node_rank", node_rank, env_node, "GROUP_RANK"),
                                       ("--local_rank", local_rank, env_local, "LOCAL_RANK")):
        if given is not None and env is not None and given != env:
            raise UserError(f"{flag} {given} contradicts torchrun's {env_name}={env}; drop {flag} or make them agree")
    local = env_local if env_local is not None else (local_rank or 0)
    node = env_node if env_node is not None else (node_rank or 0)
    if world_size % local_world:
        raise UserError(f"WORLD_SIZE {world_size} is not a multiple of LOCAL_WORLD_SIZE {local_world}; "
                        "give every node the same --nproc_per_node")

    torch_device = resolve_device(device, local)
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)

    control_group = None
    if world_size > 1:
        if not dist.is_initialized():
            backend = "nccl" if torch_device.type == "cuda" else "gloo"
            dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30),
                                    device_id=torch_device if torch_device.type == "cuda" else None)
            log.info("rank %d/%d (node %d, local %d) joined the %s group", rank, world_size, node, local, backend)
        if dist.get_backend() != "gloo":
            control_group = dist.new_group(backend="gloo")
    return DistContext(rank=rank, world_size=world_size, local_rank=local, local_world_size=local_world,
                       node_rank=node, device=torch_device, control_group=control_group)


def teardown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


@dataclass(frozen=True)
class BatchLayout:
    """How one global micro-batch (every rank's samples of one micro-step) is laid out.

    Rows [offset, offset + per_rank) of the global micro-batch belong to this rank; ranks are in
    rank order, so the union of all ranks is exactly rows [0, global_rows).
    """

    per_rank: int
    offset: int
    global_rows: int


def batch_layout(params: ModelParameters, ctx: DistContext) -> BatchLayout:
    """Split each node's `batch-size` evenly over its processes (error if it does not divide)."""
    per_node_procs = ctx.local_world_size
    sizes = []
    for node in range(ctx.num_nodes):
        node_batch = params.node_batch_size(node)
        if node_batch % per_node_procs:
            raise UserError(
                f"preset '{params.model_type}': batch-size {node_batch} of node {node} is not divisible by its "
                f"{per_node_procs} processes; change batch-size or --nproc_per_node"
            )
        sizes.extend([node_batch // per_node_procs] * per_node_procs)
    params.node_batch_size(ctx.node_rank)  # a clear error if this node has no entry
    if ctx.rank // per_node_procs != ctx.node_rank:
        raise UserError(f"rank {ctx.rank} is not on node {ctx.node_rank} with {per_node_procs} processes per node; "
                        "torchrun numbers ranks node by node")
    return BatchLayout(per_rank=sizes[ctx.rank], offset=sum(sizes[: ctx.rank]), global_rows=sum(sizes))


def check_same_step(step: int, ctx: DistContext) -> None:
    """Every rank must start from the same step; a node that cannot see the checkpoint that rank 0
    resumed would otherwise train from step 0 and drift, then hang at the end of the loop."""
    if not ctx.distributed:
        return
    bounds = torch.tensor([step, -step], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(bounds, op=dist.ReduceOp.MAX)
    highest, lowest = int(bounds[0]), -int(bounds[1])
    if highest != lowest:
        raise UserError(f"ranks start from different steps ({lowest} to {highest}): every node must see the same "
                        "MODEL_DIR (shared storage) to --do_continue a multi-node run")


def max_over_ranks(value: int, ctx: DistContext) -> int:
    """The largest `value` any rank holds (a host-side collective: every rank must call it)."""
    if not ctx.distributed:
        return value
    flag = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=ctx.control_group)
    return int(flag[0])


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum over ranks in place (asynchronous on the device; no host sync)."""
    if ctx.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
