# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "MCP Connectors",
    "summary": "MCP servers and tools for the AI agents (remote, built-in Odoo, Qdrant and "
    "MongoDB), Odoo served as an MCP server, and the channel connectors (WhatsApp, Messenger, "
    "Instagram, Mercado Livre, Shopee, Amazon)",
    "version": "19.0.1.2.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/mcp-odoo-suite/mcp-odoo-suite",
    "author": "MCP Odoo Suite contributors",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["mcp_integrator", "mail", "product", "queue_job"],
    "external_dependencies": {"python": ["mcp", "pymongo", "qdrant_client"]},
    "data": [
        "security/ir.model.access.csv",
        "security/mcp_connectors_security.xml",
        "security/mcp_client_key_security.xml",
        "security/mcp_index_run_security.xml",
        "security/mcp_channel_security.xml",
        "data/ir_cron_data.xml",
        "data/queue_job_data.xml",
        "data/channel_cron_data.xml",
        "views/mcp_server_views.xml",
        "views/mcp_server_odoo_views.xml",
        "views/mcp_server_qdrant_views.xml",
        "views/mcp_server_mongodb_views.xml",
        "views/mcp_tool_views.xml",
        "views/mcp_channel_views.xml",
        "views/mcp_channel_meta_views.xml",
        "views/mcp_channel_mercadolivre_views.xml",
        "views/mcp_channel_shopee_views.xml",
        "views/mcp_channel_amazon_views.xml",
        "views/mcp_connectors_menus.xml",
        "views/mcp_client_key_views.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "mcp_connectors/static/tests/tours/*.js",
        ],
    },
}
