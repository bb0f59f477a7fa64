import sys

from tvmse.study.runner import main

sys.exit(main())
