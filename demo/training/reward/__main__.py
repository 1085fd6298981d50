"""`python -m demo.training.reward --evaluate` (the same as `python -m demo train-reward --evaluate`)."""

from .command import main

raise SystemExit(main())
