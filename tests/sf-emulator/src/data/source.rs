//! The store seen through the SOQL engine's traits: [`Catalog`] (schemas) and
//! [`RowSource`] (cells, ids, children, the cursor-field index).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use super::{Store, Table, Val};
use crate::schema::{Kind, ObjectDef};
use crate::soql::{
    self, Address, Catalog, FieldSchema, FieldType, ObjectSchema, ParentRel, RowId, RowSource,
    Value,
};

/// Maps a describe kind to the engine's field type.
pub fn field_type(kind: Kind, length: u32, html: bool) -> FieldType {
    match kind {
        Kind::Id => FieldType::Id,
        Kind::Reference => FieldType::Reference,
        Kind::String | Kind::AnyType | Kind::Json => FieldType::String,
        Kind::TextArea if html => FieldType::RichText,
        Kind::TextArea if length > 255 => FieldType::LongTextArea,
        Kind::TextArea => FieldType::TextArea,
        Kind::Picklist => FieldType::Picklist,
        Kind::Email => FieldType::Email,
        Kind::Phone => FieldType::Phone,
        Kind::Url => FieldType::Url,
        Kind::Boolean => FieldType::Boolean,
        Kind::Int => FieldType::Int,
        Kind::Double => FieldType::Double,
        Kind::Currency => FieldType::Currency,
        Kind::Percent => FieldType::Percent,
        Kind::Date => FieldType::Date,
        Kind::DateTime => FieldType::DateTime,
        Kind::Address => FieldType::Address,
        Kind::JunctionIdList => FieldType::JunctionIdList,
    }
}

/// The engine's schema of one object.
pub fn object_schema(def: &ObjectDef) -> ObjectSchema {
    let fields = def
        .fields
        .iter()
        .map(|f| {
            let long = f.kind == Kind::TextArea && f.length > 255;
            FieldSchema {
                name: f.name.to_string(),
                ty: field_type(f.kind, f.length, f.html_formatted),
                nillable: f.nillable,
                filterable: !matches!(f.kind, Kind::Address | Kind::Json | Kind::JunctionIdList)
                    && !long,
                sortable: !matches!(
                    f.kind,
                    Kind::Address | Kind::AnyType | Kind::Json | Kind::JunctionIdList
                ) && !long,
                hidden: !f.visible(),
            }
        })
        .collect();
    let parents = def
        .fields
        .iter()
        .filter_map(|f| {
            Some(ParentRel {
                name: f.relationship_name?.to_string(),
                field: f.name.to_string(),
                target: f.reference_to.first()?.to_string(),
            })
        })
        .collect();
    let children = def
        .children
        .iter()
        .map(|c| soql::ChildRel {
            name: c.relationship_name.to_string(),
            object: c.child_object.to_string(),
            field: c.field.to_string(),
        })
        .collect();
    ObjectSchema {
        name: def.name.to_string(),
        fields,
        parents,
        children,
        queryable: true,
    }
}

/// Schemas of every object, for the SOQL engine.
pub struct Schemas {
    list: Vec<ObjectSchema>,
    by_lower: HashMap<String, usize>,
}

impl Schemas {
    /// Builds the catalog from object definitions.
    pub fn of<'a>(defs: impl IntoIterator<Item = &'a ObjectDef>) -> Schemas {
        let list: Vec<ObjectSchema> = defs.into_iter().map(object_schema).collect();
        let by_lower = list
            .iter()
            .enumerate()
            .map(|(i, o)| (o.name.to_ascii_lowercase(), i))
            .collect();
        Schemas { list, by_lower }
    }

    /// Rebuilds one object's schema after its definition changed.
    pub fn replace(&mut self, def: &ObjectDef) {
        let schema = object_schema(def);
        match self.by_lower.get(&def.name.to_ascii_lowercase()) {
            Some(&i) => self.list[i] = schema,
            None => {
                self.by_lower
                    .insert(def.name.to_ascii_lowercase(), self.list.len());
                self.list.push(schema);
            }
        }
    }
}

impl Catalog for Schemas {
    fn object(&self, name: &str) -> Option<&ObjectSchema> {
        self.by_lower
            .get(&name.to_ascii_lowercase())
            .map(|&i| &self.list[i])
    }
}

/// Converts a stored cell to the engine's value.
pub fn to_value(v: &Val) -> Value {
    match v {
        Val::Null => Value::Null,
        Val::Bool(b) => Value::Bool(*b),
        Val::Int(i) => Value::Int(*i),
        Val::Num(f) => Value::Double(*f),
        Val::Str(s) => Value::Str(s.clone()),
        Val::Date(d) => Value::Date(*d as i32),
        Val::DateTime(ms) => Value::DateTime(*ms),
    }
}

fn address(def: &ObjectDef, values: &[Val], compound: &str) -> Value {
    let mut a = Address::default();
    let prefix_len = compound.len() - "Address".len();
    for (i, f) in def.fields.iter().enumerate() {
        if f.compound_field_name != Some(compound) {
            continue;
        }
        let s = values[i].as_str().map(str::to_string);
        match &f.name[prefix_len..] {
            "Street" => a.street = s,
            "City" => a.city = s,
            "State" => a.state = s,
            "PostalCode" => a.postal_code = s,
            "Country" => a.country = s,
            "GeocodeAccuracy" => a.geocode_accuracy = s,
            "Latitude" => a.latitude = num(&values[i]),
            "Longitude" => a.longitude = num(&values[i]),
            _ => {}
        }
    }
    if a.is_empty() {
        Value::Null
    } else {
        Value::Address(Arc::new(a))
    }
}

fn num(v: &Val) -> Option<f64> {
    match v {
        Val::Num(f) => Some(*f),
        Val::Int(i) => Some(*i as f64),
        _ => None,
    }
}

/// The last generated row: (object name, row, values).
type RowCache<'a> = Option<(&'a str, RowId, Box<[Val]>)>;

type ChildIndex = HashMap<Arc<str>, Vec<RowId>>;

/// A read view of the store for one request. Not `Sync`: it caches the last generated
/// row, because the engine reads a row cell by cell and generating a pristine row costs
/// far more than one cell.
pub struct StoreSource<'a> {
    store: &'a Store,
    now: i64,
    cache: RefCell<RowCache<'a>>,
    children: RefCell<HashMap<(String, String), Arc<ChildIndex>>>,
}

impl<'a> StoreSource<'a> {
    /// A view at time `now` (epoch ms), which decides visibility.
    pub fn new(store: &'a Store, now: i64) -> Self {
        StoreSource {
            store,
            now,
            cache: RefCell::new(None),
            children: RefCell::new(HashMap::new()),
        }
    }

    fn table(&self, object: &str) -> Option<&'a Table> {
        self.store.table(object)
    }

    fn cell(&self, t: &'a Table, row: RowId, idx: usize) -> Value {
        if let Some(st) = t.state(row) {
            return self.cell_of(t, st.values_at(self.now), idx);
        }
        // Cheap cells of pristine rows, without generating the row.
        if idx == t.sys.id {
            return Value::Str(crate::ids::make(t.def.key_prefix, row as u64).into());
        }
        if Some(idx) == t.sys.is_deleted {
            return Value::Bool(false);
        }
        if Some(idx) == t.sys.cursor() {
            return Value::DateTime(t.cursor_of(row));
        }
        let mut cache = self.cache.borrow_mut();
        if let Some((name, r, vals)) = cache.as_ref()
            && *r == row
            && std::ptr::eq(*name, t.def.name)
        {
            return self.cell_of(t, vals, idx);
        }
        let Some(r) = t.row(row) else {
            return Value::Null;
        };
        let vals: Box<[Val]> = r.values().into();
        let out = self.cell_of(t, &vals, idx);
        *cache = Some((t.def.name, row, vals));
        out
    }

    fn cell_of(&self, t: &Table, values: &[Val], idx: usize) -> Value {
        let f = &t.def.fields[idx];
        if f.kind == Kind::Address {
            address(&t.def, values, &f.name)
        } else {
            to_value(&values[idx])
        }
    }

    fn child_index(&self, child: &str, fk: &str) -> Arc<ChildIndex> {
        let key = (child.to_string(), fk.to_string());
        if let Some(ix) = self.children.borrow().get(&key) {
            return ix.clone();
        }
        let mut ix: ChildIndex = HashMap::new();
        if let Some(t) = self.table(child)
            && let Some(fi) = t.def.field_index(fk)
        {
            for n in 0..t.len() as RowId {
                if !t.visible(n, self.now) {
                    continue;
                }
                if let Value::Str(p) = self.cell(t, n, fi) {
                    ix.entry(p).or_default().push(n);
                }
            }
        }
        let ix = Arc::new(ix);
        self.children.borrow_mut().insert(key, ix.clone());
        ix
    }
}

impl RowSource for StoreSource<'_> {
    fn get(&self, object: &str, row: RowId, field_index: usize) -> Value {
        match self.table(object) {
            Some(t) => self.cell(t, row, field_index),
            None => Value::Null,
        }
    }

    /// Whether the APIs can see a row now (not purged, past its visibility time, or an
    /// older version is served).
    fn visible(&self, object: &str, row: RowId) -> bool {
        self.table(object).is_some_and(|t| t.visible(row, self.now))
    }

    fn by_id(&self, object: &str, id: &str) -> Option<RowId> {
        let t = self.table(object)?;
        t.row_of(id).filter(|&n| t.visible(n, self.now))
    }

    fn rows(&self, object: &str) -> Vec<RowId> {
        self.table(object)
            .map(|t| (0..t.len() as RowId).collect())
            .unwrap_or_default()
    }

    fn children(&self, child_object: &str, fk_field: &str, parent_id: &str) -> Vec<RowId> {
        self.child_index(child_object, fk_field)
            .get(parent_id)
            .cloned()
            .unwrap_or_default()
    }

    fn sorted_rows(&self, object: &str, field_index: usize) -> Option<Cow<'_, [RowId]>> {
        let t = self.table(object)?;
        // While an older version is served, the index (built from the newest versions)
        // may not match the served values: let the engine sort.
        if t.sys.cursor() != Some(field_index) || t.has_pending(self.now) {
            return None;
        }
        // Ties are broken by row number, which is Id order (ids encode the row number
        // in order-preserving base 62).
        Some(Cow::Owned(t.ordered().as_ref().clone()))
    }
}
