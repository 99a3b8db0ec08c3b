//! What the org has and what the integration user may see: absent optional objects
//! (EmailMessage needs Email-to-Case or Enhanced Email, Knowledge must be enabled), objects
//! the user cannot read, the "View Setup and Configuration" permission `/limits` needs, and
//! the user's own permissions as `UserPermissionAccess` reports them.
//!
//! Salesforce answers an absent object and an unreadable one alike: missing from describe
//! global, 404 `NOT_FOUND` under `/sobjects/{name}/`, `INVALID_TYPE` in SOQL and Bulk.

use axum::response::Response;

use crate::Settings;
use crate::data::{RowState, Store, Table, Val};
use crate::schema::ObjectDef;
use crate::soql::{Catalog, ObjectSchema};

/// The object through which a user reads its own session's permissions.
const PERMISSION_OBJECT: &str = "UserPermissionAccess";

/// Reads whether the settings grant one permission.
type Granted = fn(&Settings) -> bool;

/// Each `UserPermissionAccess` checkbox and the setting that grants it.
const PERMISSIONS: &[(&str, Granted)] = &[
    ("PermissionsViewArchivedArticles", |s| {
        s.knowledge_archived_visible
    }),
    ("PermissionsViewSetup", |s| s.view_setup_permission),
];

/// The `UserPermissionAccess` table: one row, filled by [`sync_permissions`].
pub fn permission_table(def: ObjectDef) -> Table {
    let values: Box<[Val]> = def
        .fields
        .iter()
        .map(|f| match f.name.as_ref() {
            "Id" => Val::s(crate::ids::make(def.key_prefix, 0)),
            _ => f.backfill(),
        })
        .collect();
    let mut table = Table::new(def, 0, None);
    table.push(RowState {
        values,
        visible_at: i64::MIN,
        purged: false,
        deleted_at: None,
        previous: None,
    });
    table
}

/// Writes the user's permissions from `settings` into the `UserPermissionAccess` row;
/// `LastCacheUpdate` moves to `now_ms` when a permission changed.
pub fn sync_permissions(store: &mut Store, settings: &Settings, now_ms: i64) {
    let Some(table) = store.table_mut(PERMISSION_OBJECT) else {
        return;
    };
    let def = table.def.clone();
    let Some(row) = table.state_mut(0) else {
        return;
    };
    let mut changed = false;
    for (field, granted) in PERMISSIONS {
        if let Some(i) = def.field_index(field) {
            let value = Val::Bool(granted(settings));
            changed |= row.values[i] != value;
            row.values[i] = value;
        }
    }
    if let (true, Some(i)) = (changed, def.field_index("LastCacheUpdate")) {
        row.values[i] = Val::DateTime(now_ms - now_ms.rem_euclid(1000));
    }
}

/// Whether `object` is absent from the org or unreadable for the user (case-insensitive).
pub fn hidden(settings: &Settings, object: &str) -> bool {
    settings
        .absent_objects
        .iter()
        .chain(&settings.unreadable_objects)
        .any(|o| o.eq_ignore_ascii_case(object))
}

/// The 403 `/limits` answers a user without "View Setup and Configuration".
pub fn limits_refused() -> Response {
    crate::rest::api_error(
        403,
        "INSUFFICIENT_ACCESS",
        "You do not have sufficient privileges to access the requested resource: View Setup and Configuration is required",
    )
}

/// The schema catalog as the user sees it: hidden objects do not exist.
pub struct VisibleCatalog<'a> {
    /// The full catalog.
    pub inner: &'a dyn Catalog,
    /// The settings naming the hidden objects.
    pub settings: &'a Settings,
}

impl Catalog for VisibleCatalog<'_> {
    fn object(&self, name: &str) -> Option<&ObjectSchema> {
        if hidden(self.settings, name) {
            return None;
        }
        self.inner.object(name)
    }
}
