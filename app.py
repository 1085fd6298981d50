"""Entry point: `python app.py` serves the side-by-side UI (a Hugging Face Space runs it as is)."""

import sys

from demo.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
