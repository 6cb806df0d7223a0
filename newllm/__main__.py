"""``python -m newllm`` (also what ``torchrun -m newllm`` runs)."""

from .cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
