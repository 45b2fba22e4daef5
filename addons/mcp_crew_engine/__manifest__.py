# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0).
{
    "name": "MCP Crew Engine",
    "summary": "AI agents and crews that answer each customer request: routing, tools, "
    "context and budgets, run as queue jobs",
    "version": "19.0.1.0.0",
    "category": "Productivity/Discuss",
    "website": "https://github.com/mcp-odoo-suite/mcp-odoo-suite",
    "author": "MCP Odoo Suite contributors",
    "license": "LGPL-3",
    "installable": True,
    "depends": ["mcp_connectors", "queue_job"],
    "external_dependencies": {"python": ["litellm"]},
    "data": [
        "security/ir.model.access.csv",
        "security/mcp_crew_engine_security.xml",
        "data/queue_job_data.xml",
        "views/mcp_crew_run_templates.xml",
        "views/mcp_crew_views.xml",
        "views/mcp_crew_run_views.xml",
        "wizards/mcp_crew_try_views.xml",
        "views/mcp_tenant_views.xml",
        "views/mcp_crew_engine_menus.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "mcp_crew_engine/static/tests/tours/*.js",
        ],
    },
}
