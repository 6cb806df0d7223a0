"""Run infrastructure: checkpoints and run directories, the run lock, atomic JSON, torch.distributed.

Imports only the core (config, model); Phase 1, Phase 2 and the tools build on it.
"""
