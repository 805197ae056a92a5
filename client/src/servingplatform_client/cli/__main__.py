import sys

from servingplatform_client.cli import main

sys.exit(main())
