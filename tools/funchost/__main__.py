"""``python -m tools.funchost --script-root . --host 127.0.0.1 --port 7071``"""

import sys

from tools.funchost.host import main

if __name__ == "__main__":
    sys.exit(main())
