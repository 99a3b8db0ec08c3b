//! The record store.
//!
//! Big tables (a million Cases) must be ready in seconds and fit in little memory, so
//! pristine rows are never stored: a row that was never written is generated on demand
//! from `(seed, object, row number)` by a pure function. Only rows that were written
//! (inserted, updated, deleted, purged) are materialised as [`RowState`]. Row numbers are
//! encoded in the record ids (see [`crate::ids`]), so an id lookup is O(1).

pub mod generate;
pub mod source;
pub mod value;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use value::Val;

use crate::schema::{FieldAccess, FieldDef, ObjectDef};

/// A generator of pristine rows: row number → values in schema field order.
pub type GenFn = Arc<dyn Fn(u32) -> Box<[Val]> + Send + Sync>;

/// The cursor value (epoch ms) of a pristine row, computed without generating the row.
pub type CursorFn = Arc<dyn Fn(u32) -> i64 + Send + Sync>;

/// A row that was written at least once.
#[derive(Clone, Debug)]
pub struct RowState {
    /// Values in schema field order (compound fields are `Null`; they are derived).
    pub values: Box<[Val]>,
    /// Epoch ms from which queries see this row (models commit/replication lag).
    pub visible_at: i64,
    /// Hard-deleted: gone from every API, still in the ground-truth export.
    pub purged: bool,
    /// When the row went to the recycle bin, if it is soft-deleted.
    pub deleted_at: Option<i64>,
    /// The version the APIs keep serving until `visible_at`, when a write to a row
    /// that was already visible is not visible yet (Salesforce shows the old version
    /// until the new one commits). `None` for a pending insert: that row stays hidden.
    pub previous: Option<Box<Version>>,
}

/// An older version of a row, served while a newer write is not yet visible.
#[derive(Clone, Debug)]
pub struct Version {
    pub values: Box<[Val]>,
    pub deleted_at: Option<i64>,
}

impl RowState {
    /// Whether a newer version exists that is not visible at `now`, while an older one is served.
    pub fn pending(&self, now: i64) -> bool {
        self.visible_at > now && self.previous.is_some()
    }

    /// The values the APIs serve at `now` (the previous version while an update is pending).
    pub fn values_at(&self, now: i64) -> &[Val] {
        match &self.previous {
            Some(p) if self.visible_at > now => &p.values,
            _ => &self.values,
        }
    }

    /// Recycle-bin time of the version served at `now`.
    pub fn deleted_at_at(&self, now: i64) -> Option<i64> {
        match &self.previous {
            Some(p) if self.visible_at > now => p.deleted_at,
            _ => self.deleted_at,
        }
    }
}

/// Positions of the system fields the store itself maintains.
#[derive(Clone, Copy, Debug, Default)]
pub struct SysIdx {
    pub id: usize,
    pub is_deleted: Option<usize>,
    pub created: Option<usize>,
    pub last_modified: Option<usize>,
    pub modstamp: Option<usize>,
}

impl SysIdx {
    fn of(def: &ObjectDef) -> Self {
        SysIdx {
            id: def.field_index("Id").unwrap_or(0),
            is_deleted: def.field_index("IsDeleted"),
            created: def.field_index("CreatedDate"),
            last_modified: def.field_index("LastModifiedDate"),
            modstamp: def.field_index("SystemModstamp"),
        }
    }

    /// The cursor field for this object: SystemModstamp, else CreatedDate.
    pub fn cursor(&self) -> Option<usize> {
        self.modstamp.or(self.created)
    }
}

/// One object's rows.
///
/// Every row's values have one cell per field of `def`. Fields added at run time
/// ([`Store::add_fields`]) are appended, so field indices never move: queries parsed and
/// cursors opened before the change stay valid. Stored rows are widened when fields are
/// added; generated rows come from a generator that knows only the original fields and
/// are widened as they are read (see [`Table::row`]).
pub struct Table {
    pub def: Arc<ObjectDef>,
    pub sys: SysIdx,
    /// Describe `Last-Modified` of this object (epoch ms, whole seconds).
    pub schema_modified_ms: i64,
    lazy_len: u32,
    generator: Option<GenFn>,
    lazy_cursor: Option<CursorFn>,
    slots: Vec<Option<Box<RowState>>>,
    /// Latest `visible_at` of a write that left an older version being served.
    pending_until: i64,
    /// Row numbers ordered by (cursor field, row number); rebuilt after writes.
    order: Mutex<Option<Arc<Vec<u32>>>>,
}

/// A read view of one row.
pub enum RowRef<'a> {
    Generated(Box<[Val]>),
    Stored(&'a RowState),
    /// One version's values (see [`Table::view`]).
    Values(&'a [Val]),
}

impl RowRef<'_> {
    /// Values in schema order.
    pub fn values(&self) -> &[Val] {
        match self {
            RowRef::Generated(v) => v,
            RowRef::Stored(s) => &s.values,
            RowRef::Values(v) => v,
        }
    }
}

impl Table {
    /// A table whose first `lazy_len` rows come from `gen`.
    pub fn new(def: ObjectDef, lazy_len: u32, generator: Option<GenFn>) -> Self {
        let sys = SysIdx::of(&def);
        Table {
            def: Arc::new(def),
            sys,
            schema_modified_ms: 0,
            lazy_len: if generator.is_some() { lazy_len } else { 0 },
            generator,
            lazy_cursor: None,
            slots: (0..lazy_len).map(|_| None).collect(),
            pending_until: i64::MIN,
            order: Mutex::new(None),
        }
    }

    /// Sets the cheap cursor function for pristine rows.
    pub fn with_lazy_cursor(mut self, f: CursorFn) -> Self {
        self.lazy_cursor = Some(f);
        self
    }

    /// Number of row numbers in use (including purged rows).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Reads row `n` regardless of visibility.
    pub fn row(&self, n: u32) -> Option<RowRef<'_>> {
        match self.slots.get(n as usize)? {
            Some(s) => Some(RowRef::Stored(s)),
            None if n < self.lazy_len => {
                let values = (self.generator.as_ref()?)(n);
                Some(RowRef::Generated(self.widen(values)))
            }
            None => None,
        }
    }

    /// Appends the backfill values of fields added after `values` was made.
    fn widen(&self, values: Box<[Val]>) -> Box<[Val]> {
        let have = values.len();
        let fields = &self.def.fields;
        if have >= fields.len() {
            return values;
        }
        let mut v = values.into_vec();
        v.extend(fields[have..].iter().map(FieldDef::backfill));
        v.into_boxed_slice()
    }

    /// Appends fields to the definition and widens the stored rows (and the versions
    /// they keep serving) with each field's backfill value.
    fn add_fields(&mut self, fields: Vec<FieldDef>, modified_ms: i64) {
        let mut def = (*self.def).clone();
        def.fields.extend(fields);
        self.def = Arc::new(def);
        self.schema_modified_ms = modified_ms;
        let widen = |b: &mut Box<[Val]>, def: &ObjectDef| {
            if b.len() < def.fields.len() {
                let mut v = std::mem::take(b).into_vec();
                v.extend(def.fields[v.len()..].iter().map(FieldDef::backfill));
                *b = v.into_boxed_slice();
            }
        };
        for st in self.slots.iter_mut().flatten() {
            widen(&mut st.values, &self.def);
            if let Some(p) = st.previous.as_mut() {
                widen(&mut p.values, &self.def);
            }
        }
    }

    /// The stored state of row `n`, if it was ever written.
    pub fn state(&self, n: u32) -> Option<&RowState> {
        self.slots.get(n as usize)?.as_deref()
    }

    /// Whether the APIs can see row `n` at `now` (not purged, past its visibility time).
    /// Deleted rows are visible here; `/query` filters them separately.
    /// A row whose update is pending is visible (in its previous version).
    pub fn visible(&self, n: u32, now: i64) -> bool {
        match self.slots.get(n as usize) {
            Some(Some(s)) => !s.purged && (s.visible_at <= now || s.previous.is_some()),
            Some(None) => n < self.lazy_len,
            None => false,
        }
    }

    /// Whether the newest version of row `n` is visible at `now` (no write pending).
    pub fn current_visible(&self, n: u32, now: i64) -> bool {
        match self.slots.get(n as usize) {
            Some(Some(s)) => !s.purged && s.visible_at <= now,
            Some(None) => n < self.lazy_len,
            None => false,
        }
    }

    /// Whether row `n` is in the recycle bin.
    pub fn is_deleted(&self, n: u32) -> bool {
        matches!(self.slots.get(n as usize), Some(Some(s)) if s.deleted_at.is_some())
    }

    /// Whether row `n`, in the version served at `now`, is in the recycle bin.
    pub fn is_deleted_at(&self, n: u32, now: i64) -> bool {
        matches!(self.slots.get(n as usize), Some(Some(s)) if s.deleted_at_at(now).is_some())
    }

    /// Row `n` as the APIs see it at `now`: `None` if purged or not visible yet; the
    /// previous version while an update is pending.
    pub fn view(&self, n: u32, now: i64) -> Option<RowRef<'_>> {
        if !self.visible(n, now) {
            return None;
        }
        match self.slots.get(n as usize)? {
            Some(s) => Some(RowRef::Values(s.values_at(now))),
            None => self.row(n),
        }
    }

    /// Whether some row serves an older version at `now` (cursor order may not match
    /// the served values then).
    pub fn has_pending(&self, now: i64) -> bool {
        self.pending_until > now
    }

    /// Writes a new version of row `n`, visible from `visible_at`. If the row was
    /// visible at `now` and the new version is not, the old version keeps being served
    /// until then.
    pub fn write_version(
        &mut self,
        n: u32,
        now: i64,
        visible_at: i64,
        values: Box<[Val]>,
        deleted_at: Option<i64>,
    ) -> Option<()> {
        let st = self.state_mut(n)?;
        if visible_at <= now {
            st.previous = None;
        } else if st.visible_at <= now && !st.purged {
            st.previous = Some(Box::new(Version {
                values: std::mem::take(&mut st.values),
                deleted_at: st.deleted_at,
            }));
        }
        // Otherwise a write is already pending: its previous version (if any) stays.
        st.values = values;
        st.deleted_at = deleted_at;
        st.visible_at = visible_at;
        let pending = st.previous.is_some();
        if pending {
            self.pending_until = self.pending_until.max(visible_at);
        }
        Some(())
    }

    /// Row number of an id of this object, if the id is well-formed and the row exists.
    pub fn row_of(&self, id: &str) -> Option<u32> {
        let (prefix, n) = crate::ids::parse(id)?;
        (prefix == self.def.key_prefix && (n as usize) < self.slots.len()).then_some(n as u32)
    }

    /// Materialises row `n` for writing.
    pub fn state_mut(&mut self, n: u32) -> Option<&mut RowState> {
        let values = match self.slots.get(n as usize)? {
            Some(_) => None,
            None => Some(self.row(n)?.values().to_vec().into_boxed_slice()),
        };
        *self.order.get_mut().expect("order lock") = None;
        let slot = &mut self.slots[n as usize];
        if let Some(values) = values {
            *slot = Some(Box::new(RowState {
                values,
                visible_at: i64::MIN,
                purged: false,
                deleted_at: None,
                previous: None,
            }));
        }
        slot.as_deref_mut()
    }

    /// Appends a new row and returns its row number.
    pub fn push(&mut self, state: RowState) -> u32 {
        self.slots.push(Some(Box::new(state)));
        *self.order.get_mut().expect("order lock") = None;
        (self.slots.len() - 1) as u32
    }

    /// The row's cursor value (SystemModstamp, else CreatedDate) in epoch ms.
    pub fn cursor_of(&self, n: u32) -> i64 {
        if let (Some(f), Some(None)) = (&self.lazy_cursor, self.slots.get(n as usize)) {
            return f(n);
        }
        let Some(ix) = self.sys.cursor() else {
            return 0;
        };
        self.row(n)
            .and_then(|r| r.values()[ix].as_datetime())
            .unwrap_or(0)
    }

    /// Row numbers sorted by `(cursor, row number)`; cached until the next write.
    pub fn ordered(&self) -> Arc<Vec<u32>> {
        let mut guard = self.order.lock().expect("order lock");
        if let Some(o) = guard.as_ref() {
            return o.clone();
        }
        let mut keyed: Vec<(i64, u32)> = (0..self.slots.len() as u32)
            .map(|n| (self.cursor_of(n), n))
            .collect();
        // Pristine rows are generated in cursor order already, so this sort mostly
        // sees one long sorted run and a few moved rows.
        keyed.sort_unstable();
        let order = Arc::new(keyed.into_iter().map(|(_, n)| n).collect::<Vec<_>>());
        *guard = Some(order.clone());
        order
    }
}

/// All tables of the org, by lower-case object name.
pub struct Store {
    tables: HashMap<String, Table>,
    /// Object names in describe-global order.
    pub names: Vec<&'static str>,
    /// The SOQL engine's view of the schema, kept in step with the tables' definitions
    /// (it lives under the same lock, so a query is parsed and run against one schema).
    pub schemas: source::Schemas,
    /// Describe-global `Last-Modified`: the latest of the objects' (epoch ms).
    schema_modified_ms: i64,
}

/// What [`Store::add_fields`] changed.
#[derive(Clone, Debug)]
pub struct AddedFields {
    /// Canonical object name.
    pub object: &'static str,
    /// Canonical names of the added fields.
    pub added: Vec<String>,
    /// The object's field count afterwards.
    pub field_count: usize,
    /// The new describe `Last-Modified` (epoch ms, whole seconds).
    pub modified_ms: i64,
}

/// Why [`Store::add_fields`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaError {
    UnknownObject(String),
    Invalid(String),
}

impl Store {
    /// Builds a store from tables.
    pub fn new(tables: Vec<Table>) -> Self {
        let names = tables.iter().map(|t| t.def.name).collect();
        let schemas = source::Schemas::of(tables.iter().map(|t| &*t.def));
        Store {
            tables: tables
                .into_iter()
                .map(|t| (t.def.name.to_ascii_lowercase(), t))
                .collect(),
            names,
            schemas,
            schema_modified_ms: 0,
        }
    }

    /// Sets every object's describe `Last-Modified` (at start-up).
    pub fn set_schema_modified(&mut self, ms: i64) {
        let ms = ms - ms.rem_euclid(1000);
        self.schema_modified_ms = ms;
        for t in self.tables.values_mut() {
            t.schema_modified_ms = ms;
        }
    }

    /// Describe-global `Last-Modified` (epoch ms).
    pub fn schema_modified_ms(&self) -> i64 {
        self.schema_modified_ms
    }

    /// Adds custom fields to an object, as an admin does in Setup: all or none. Names
    /// must be new to the object (case-insensitive, also within `fields`). The object's
    /// and the global describe `Last-Modified` become `now_ms` truncated to the second,
    /// but always at least one second after the previous global value, so a client
    /// holding any earlier value sees the change through `If-Modified-Since`.
    pub fn add_fields(
        &mut self,
        object: &str,
        fields: Vec<FieldDef>,
        now_ms: i64,
    ) -> Result<AddedFields, SchemaError> {
        let table = self
            .tables
            .get_mut(&object.to_ascii_lowercase())
            .ok_or_else(|| SchemaError::UnknownObject(object.to_string()))?;
        if fields.is_empty() {
            return Err(SchemaError::Invalid("no fields given".into()));
        }
        for (i, f) in fields.iter().enumerate() {
            let earlier = fields[..i]
                .iter()
                .any(|g| g.name.eq_ignore_ascii_case(&f.name));
            if let Some(old) = table.def.field(&f.name) {
                return Err(SchemaError::Invalid(format!(
                    "field {:?}: {} already has a field named {}",
                    f.name.as_ref(),
                    table.def.name,
                    old.name
                )));
            }
            if earlier {
                return Err(SchemaError::Invalid(format!(
                    "field {:?}: given twice",
                    f.name.as_ref()
                )));
            }
        }
        let now_s = now_ms - now_ms.rem_euclid(1000);
        let modified = now_s.max(self.schema_modified_ms + 1000);
        let added = fields.iter().map(|f| f.name.to_string()).collect();
        table.add_fields(fields, modified);
        self.schema_modified_ms = modified;
        self.schemas.replace(&table.def);
        Ok(AddedFields {
            object: table.def.name,
            added,
            field_count: table.def.fields.len(),
            modified_ms: modified,
        })
    }

    /// Deletes a custom field or hides a field from the integration user (or shows it again):
    /// the APIs stop naming it while rows keep their shape. A deletion moves the describe
    /// `Last-Modified` as [`Store::add_fields`] does; field-level security leaves it alone.
    /// Returns the canonical field name and the describe `Last-Modified` afterwards.
    pub fn set_field_access(
        &mut self,
        object: &str,
        field: &str,
        access: FieldAccess,
        now_ms: i64,
    ) -> Result<(String, i64), SchemaError> {
        let table = self
            .tables
            .get_mut(&object.to_ascii_lowercase())
            .ok_or_else(|| SchemaError::UnknownObject(object.to_string()))?;
        let i = table
            .def
            .field_index(field)
            .filter(|&i| table.def.fields[i].access != FieldAccess::Deleted)
            .ok_or_else(|| {
                SchemaError::Invalid(format!("{} has no field {field}", table.def.name))
            })?;
        let f = &table.def.fields[i];
        if i == table.sys.id || Some(i) == table.sys.modstamp || f.name == "IsDeleted" {
            return Err(SchemaError::Invalid(format!(
                "{} cannot be removed: every client reads it",
                f.name
            )));
        }
        if access == FieldAccess::Deleted && !f.custom {
            return Err(SchemaError::Invalid(format!(
                "{} is a standard field; only custom fields (__c) can be deleted",
                f.name
            )));
        }
        let name = f.name.to_string();
        let mut def = (*table.def).clone();
        def.fields[i].access = access;
        table.def = Arc::new(def);
        if access == FieldAccess::Deleted {
            let now_s = now_ms - now_ms.rem_euclid(1000);
            let modified = now_s.max(self.schema_modified_ms + 1000);
            table.schema_modified_ms = modified;
            self.schema_modified_ms = modified;
        }
        let modified = table.schema_modified_ms;
        self.schemas.replace(&table.def);
        Ok((name, modified))
    }

    /// A table by case-insensitive object name.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    /// A mutable table by case-insensitive object name.
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.get_mut(&name.to_ascii_lowercase())
    }

    /// The table holding an id, by key prefix.
    pub fn table_for_id(&self, id: &str) -> Option<&Table> {
        let (prefix, _) = crate::ids::parse(id)?;
        self.tables.values().find(|t| t.def.key_prefix == prefix)
    }

    /// Every table in describe-global order.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.names.iter().filter_map(|n| self.table(n))
    }
}
