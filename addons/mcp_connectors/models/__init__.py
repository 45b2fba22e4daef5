from . import mcp_server
from . import mcp_tool
