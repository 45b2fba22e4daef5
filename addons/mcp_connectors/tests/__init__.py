from . import test_mcp_server
