"""Model families from presets: BERT (`models.bert`), ELECTRA (`models.electra`) and ModernBERT
(`models.modernbert`), each behind the interface of `models.family`, found by name in `models.families`.

Model code is pure: no file I/O beyond save/load of weights, nothing distributed."""
