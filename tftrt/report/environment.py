"""``python -m tftrt.report.environment`` prints the table of docs/environment.md."""

import sys

from tftrt.env import markdown_table

if __name__ == "__main__":
    sys.stdout.write(markdown_table())
