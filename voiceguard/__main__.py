import sys

from voiceguard.cli import main

sys.exit(main())
