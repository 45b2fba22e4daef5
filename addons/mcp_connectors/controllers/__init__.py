from . import mcp_endpoint
