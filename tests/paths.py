from pathlib import Path

# The repository's root, wherever a test module sits in the tree.
REPO_ROOT = Path(__file__).resolve().parent.parent
