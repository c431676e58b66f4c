import sys

from .cli import main

if __name__ == "__main__":   # not when a spawned worker of `compare --jobs` imports it
    sys.exit(main())
