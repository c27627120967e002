import sys

from ja_pretrain.cli import main

sys.exit(main())
