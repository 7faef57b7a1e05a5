import sys

from p2o.docs import main

sys.exit(main())
