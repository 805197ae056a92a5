import sys

from inference.runtime.worker.process import main

sys.exit(main())
