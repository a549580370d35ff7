"""`python -m grok_core` is the `grok` command."""
import sys

from .cli import main

sys.exit(main())
