"""Odoo's command line, started from a file as odoo-bin does, for whichever Odoo is importable.

`python3 -m odoo` cannot serve with workers: the prefork server starts its websocket (gevent)
process by running sys.argv[0] again, and odoo/__main__.py cannot run as a plain file.
"""

import odoo.cli

if __name__ == "__main__":
    odoo.cli.main()
