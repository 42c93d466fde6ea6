"""Entry point in a clone: `python run.py experiment=reptile_amazon [key=value ...]`.

The same as `metalearn train ...` (src/metalearn/run.py), with this clone as the project root.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from metalearn.registry.launch_failure import record_launch_failure  # noqa: E402
from metalearn.run import launch  # noqa: E402  (after PROJECT_ROOT is set)

if __name__ == "__main__":
    launch(sys.argv[1:], on_launch_failure=record_launch_failure)
