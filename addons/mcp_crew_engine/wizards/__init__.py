from . import mcp_crew_try
