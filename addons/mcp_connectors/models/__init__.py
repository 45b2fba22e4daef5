from . import mcp_server
from . import mcp_server_odoo
from . import mcp_odoo_tools
from . import mcp_tool
