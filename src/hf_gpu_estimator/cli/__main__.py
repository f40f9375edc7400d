"""``python -m hf_gpu_estimator.cli``."""

from hf_gpu_estimator.cli import main

raise SystemExit(main())
