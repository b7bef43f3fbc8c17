import sys

from parrot_cli.main import main

sys.exit(main())
