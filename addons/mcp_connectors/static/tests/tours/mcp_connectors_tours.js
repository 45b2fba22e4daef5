/* License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl-3.0). */
import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_utils";

// The tests that start these tours create the tenant "Padaria Tour" and the internal user
// "Tour Bot" (tests/test_browser.py).
const TENANT = "Padaria Tour";
const BOT = "Tour Bot";

function openToolsMenu(menuXmlid) {
    return [
        ...stepUtils.goToAppSteps("mcp_integrator.menu_mcp_root", "Open AI Integration"),
        {
            trigger: ".o_main_navbar [data-menu-xmlid='mcp_connectors.menu_mcp_tools_root']",
            run: "click",
        },
        { trigger: `.dropdown-item[data-menu-xmlid='${menuXmlid}']`, run: "click" },
    ];
}

function pickRecord(field, name) {
    return [
        { trigger: `.o_field_widget[name=${field}] input`, run: `edit ${name}` },
        {
            // the record, not the "Create ..." option offered before the search answers
            trigger:
                `.o_field_widget[name=${field}] .o-autocomplete--dropdown-item` +
                `:not(.o_m2o_dropdown_option):contains(${name})`,
            run: "click",
        },
    ];
}

function toolRow(tool) {
    // the exact name: :contains(add) would also match a tool such as add_note
    return `.o_field_widget[name=tool_ids] .o_data_row:has(td[name=name]:text(${tool}))`;
}

const DISCOVER_TOOLS = { trigger: ".o_form_saved button[name=action_discover]", run: "click" };

// An admin adds the built-in Odoo tools to a tenant, discovers them and enables a tool that
// changes data (discovery leaves those disabled).
registry.category("web_tour.tours").add("mcp_connectors_odoo_server_tour", {
    steps: () => [
        ...openToolsMenu("mcp_connectors.menu_mcp_server"),
        { trigger: ".o_list_button_add", run: "click" },
        { trigger: ".o_field_widget[name=name] input", run: "edit Padaria Catalog" },
        { trigger: ".o_field_widget[name=code] input", run: "edit catalog" },
        ...pickRecord("tenant_id", TENANT),
        { trigger: ".o_field_widget[name=kind] .o_select_menu_toggler", run: "click" },
        { trigger: ".o_select_menu_item:contains(Built-in: Odoo)", run: "click" },
        ...pickRecord("run_as_user_id", BOT),
        ...stepUtils.saveForm(),
        DISCOVER_TOOLS,
        { trigger: `${toolRow("odoo_product_search")} [name=enabled] input:checked` },
        { trigger: `${toolRow("odoo_search_records")} [name=enabled] input:not(:checked)` },
        { trigger: `${toolRow("odoo_log_activity")} [name=enabled] input:not(:checked)` },
        { trigger: `${toolRow("odoo_log_activity")} [name=enabled] input`, run: "click" },
        ...stepUtils.saveForm(),
        { trigger: `.o_form_saved ${toolRow("odoo_log_activity")} [name=enabled] input:checked` },
    ],
});

// The key is shown once, in a dialog; afterwards the form shows only its public prefix.
registry.category("web_tour.tours").add("mcp_connectors_client_key_tour", {
    steps: () => {
        let shownKey = null;
        return [
            ...openToolsMenu("mcp_connectors.menu_mcp_client_key"),
            { trigger: ".o_list_button_add", run: "click" },
            { trigger: ".o_field_widget[name=name] input", run: "edit Claude Desktop Tour" },
            ...pickRecord("tenant_id", TENANT),
            ...pickRecord("user_id", BOT),
            { trigger: "button[name=action_generate_key]:contains(Generate Key)", run: "click" },
            {
                trigger: ".modal .o_field_widget[name=key]:contains(odoo_mcp_)",
                run() {
                    shownKey = this.anchor.textContent.trim();
                },
            },
            { trigger: ".modal button:contains(Done)", run: "click" },
            {
                trigger:
                    "body:not(:has(.modal)) .o_form_saved " +
                    ".o_field_widget[name=key_prefix]:not(:empty)",
                run() {
                    const prefix = this.anchor.textContent.trim();
                    if (!shownKey.startsWith(`odoo_mcp_${prefix}_`)) {
                        throw new Error(`the key shown does not start with the prefix ${prefix}`);
                    }
                    if (document.body.textContent.includes(shownKey)) {
                        throw new Error("the key is still on the page after its dialog closed");
                    }
                },
            },
            { trigger: ".o_statusbar_status .o_arrow_button_current:contains(Valid)" },
        ];
    },
});

// A remote MCP server the test started: the admin discovers its tools.
registry.category("web_tour.tours").add("mcp_connectors_remote_server_tour", {
    steps: () => [
        ...openToolsMenu("mcp_connectors.menu_mcp_server"),
        { trigger: ".o_data_row td[name=name]:contains(Demo Remote)", run: "click" },
        DISCOVER_TOOLS,
        { trigger: `${toolRow("add")} [name=enabled] input:checked` },
        { trigger: `${toolRow("create_order")} [name=enabled] input:not(:checked)` },
    ],
});

function openChannels() {
    return [
        ...stepUtils.goToAppSteps("mcp_integrator.menu_mcp_root", "Open AI Integration"),
        {
            trigger: ".o_main_navbar [data-menu-xmlid='mcp_integrator.menu_mcp_configuration']",
            run: "click",
        },
        {
            trigger: ".dropdown-item[data-menu-xmlid='mcp_connectors.menu_mcp_channel']",
            run: "click",
        },
    ];
}

// An admin connects a Mercado Livre seller: the channel shows the inbound URL to paste into
// the DevCenter. The test prepares the credential "Tour ML tokens".
registry.category("web_tour.tours").add("mcp_connectors_channel_tour", {
    steps: () => [
        ...openChannels(),
        { trigger: ".o_list_button_add", run: "click" },
        { trigger: ".o_field_widget[name=name] input", run: "edit Loja Tour no Mercado Livre" },
        ...pickRecord("tenant_id", TENANT),
        { trigger: ".o_field_widget[name=channel_type] .o_select_menu_toggler", run: "click" },
        { trigger: ".o_select_menu_item:contains(Mercado Livre)", run: "click" },
        { trigger: ".o_field_widget[name=account_ref] input", run: "edit 123456789" },
        ...pickRecord("access_credential_id", "Tour ML tokens"),
        ...stepUtils.saveForm(),
        { trigger: ".o_form_saved .o_field_widget[name=inbound_url]:contains(/mcp/channel/)" },
        { trigger: ".o-form-buttonbox button[name=action_open_server]" },
    ],
});

// *Test* on the channel (pointed by the test at a fake Mercado Livre) names the seller.
registry.category("web_tour.tours").add("mcp_connectors_channel_test_tour", {
    steps: () => [
        ...openChannels(),
        { trigger: ".o_data_row td:contains(Loja Tour no Mercado Livre)", run: "click" },
        { trigger: ".o_form_saved button[name=action_test]", run: "click" },
        { trigger: ".o_notification:contains(Seller LOJA_TESTE (123456789))" },
    ],
});
