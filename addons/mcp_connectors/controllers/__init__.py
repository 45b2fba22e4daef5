from . import mcp_endpoint
from . import channel_webhook
