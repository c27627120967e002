"""Model construction from presets: BERT (`models.bert`) and ELECTRA (`models.electra`).

Model code is pure: no file I/O beyond save/load of weights, nothing distributed."""
