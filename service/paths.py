"""Where the data files shipped beside the package live (repository layout)."""

from __future__ import annotations

from pathlib import Path

# service/, schemas/ and couch/ are siblings at the top of the repository.
ROOT = Path(__file__).resolve().parent.parent
SCHEMAS_DIR = ROOT / "schemas"
COUCH_DIR = ROOT / "couch"
DESIGN_DIR = COUCH_DIR / "design"
