from . import test_mcp_server
from . import test_mcp_endpoint
from . import test_odoo_tools
from . import test_qdrant_mongo
from . import test_channel
from . import test_browser
