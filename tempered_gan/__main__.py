import sys

from tempered_gan.cli.main import main

if __name__ == "__main__":   # not when a spawned worker of `compare --jobs` imports it
    sys.exit(main())
