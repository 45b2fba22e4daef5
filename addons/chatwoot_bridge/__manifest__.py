# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "Chatwoot Bridge",
    "summary": "AI replies in Chatwoot from the crews, clean handoff to people, and Chatwoot as "
    "the inbox of every other channel",
    "version": "19.0.1.1.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/mcp-odoo-suite/mcp-odoo-suite",
    "author": "MCP Odoo Suite contributors",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["mcp_crew_engine", "queue_job"],
    "external_dependencies": {"python": ["requests"]},
    "data": [
        "security/ir.model.access.csv",
        "security/chatwoot_bridge_security.xml",
        "data/queue_job_data.xml",
        "data/ir_cron_data.xml",
        "views/chatwoot_account_views.xml",
        "views/chatwoot_conversation_views.xml",
        "views/chatwoot_event_views.xml",
        "views/chatwoot_hub_message_views.xml",
        "views/mcp_crew_run_views.xml",
        "views/chatwoot_bridge_menus.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "chatwoot_bridge/static/tests/tours/*.js",
        ],
    },
}
