import sys

from reconad.cli import main

sys.exit(main())
