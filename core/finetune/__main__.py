"""Entry point for `python -m core.finetune`."""

from core.finetune.cli import main

raise SystemExit(main())
