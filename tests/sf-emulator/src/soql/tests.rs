//! End-to-end tests of the engine against a small in-memory catalog and row source.

use std::borrow::Cow;
use std::sync::Arc;

use super::value::{parse_date, parse_datetime};
use super::*;

const CUSTOM_FIELD_HINT: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

struct Table {
    schema: ObjectSchema,
    rows: Vec<Vec<Value>>,
}

struct Db {
    tables: Vec<Table>,
    /// Offer `sorted_rows` indexes.
    indexed: bool,
}

fn f(name: &str, ty: FieldType) -> FieldSchema {
    let long = matches!(ty, FieldType::LongTextArea | FieldType::RichText);
    FieldSchema {
        name: name.into(),
        ty,
        nillable: name != "Id",
        filterable: !long && ty != FieldType::Address,
        sortable: !long && ty != FieldType::Address,
        hidden: false,
    }
}

fn parent(name: &str, field: &str, target: &str) -> ParentRel {
    ParentRel {
        name: name.into(),
        field: field.into(),
        target: target.into(),
    }
}

fn dt(s: &str) -> Value {
    Value::DateTime(parse_datetime(s).unwrap())
}
fn s(v: &str) -> Value {
    Value::str(v)
}

impl Db {
    fn table(&self, name: &str) -> &Table {
        self.tables
            .iter()
            .find(|t| t.schema.name == name)
            .unwrap_or_else(|| panic!("engine passed non-canonical object {name}"))
    }
    fn table_mut(&mut self, name: &str) -> &mut Table {
        self.tables
            .iter_mut()
            .find(|t| t.schema.name == name)
            .unwrap()
    }
    fn idx(&self, obj: &str, field: &str) -> usize {
        self.table(obj)
            .schema
            .fields
            .iter()
            .position(|f| f.name == field)
            .unwrap()
    }
    /// Appends a row given as (field, value) pairs; other fields null.
    fn add(&mut self, obj: &str, vals: &[(&str, Value)]) -> RowId {
        let n = self.table(obj).schema.fields.len();
        let mut row = vec![Value::Null; n];
        for (k, v) in vals {
            let i = self.idx(obj, k);
            row[i] = v.clone();
        }
        let t = self.table_mut(obj);
        t.rows.push(row);
        (t.rows.len() - 1) as RowId
    }
}

impl Catalog for Db {
    fn object(&self, name: &str) -> Option<&ObjectSchema> {
        self.tables
            .iter()
            .map(|t| &t.schema)
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }
}

impl RowSource for Db {
    fn get(&self, object: &str, row: RowId, field_index: usize) -> Value {
        self.table(object).rows[row as usize][field_index].clone()
    }
    fn by_id(&self, object: &str, id: &str) -> Option<RowId> {
        let t = self.table(object);
        t.rows
            .iter()
            .position(|r| r[0].as_str() == Some(id))
            .map(|p| p as RowId)
    }
    fn rows(&self, object: &str) -> Vec<RowId> {
        (0..self.table(object).rows.len() as RowId).collect()
    }
    fn children(&self, child_object: &str, fk_field: &str, parent_id: &str) -> Vec<RowId> {
        let fi = self.idx(child_object, fk_field);
        let t = self.table(child_object);
        (0..t.rows.len() as RowId)
            .filter(|&r| t.rows[r as usize][fi].as_str() == Some(parent_id))
            .collect()
    }
    fn sorted_rows(&self, object: &str, field_index: usize) -> Option<Cow<'_, [RowId]>> {
        if !self.indexed {
            return None;
        }
        let t = self.table(object);
        let mut v = self.rows(object);
        v.sort_by(|&a, &b| {
            let (x, y) = (&t.rows[a as usize], &t.rows[b as usize]);
            let kx = x[field_index].num_key();
            let ky = y[field_index].num_key();
            let o = match (kx, ky) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, _) => std::cmp::Ordering::Less,
                (_, None) => std::cmp::Ordering::Greater,
                (Some(p), Some(q)) => p.partial_cmp(&q).unwrap(),
            };
            o.then_with(|| x[0].as_str().cmp(&y[0].as_str()))
        });
        Some(Cow::Owned(v))
    }
}

/// (id digit, subject, status, account id, SystemModstamp, deleted)
type CaseRow = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    &'static str,
    bool,
);

fn db() -> Db {
    use FieldType::*;
    let user = ObjectSchema {
        name: "User".into(),
        fields: vec![f("Id", Id), f("Name", String)],
        parents: vec![],
        children: vec![],
        queryable: true,
    };
    let account = ObjectSchema {
        name: "Account".into(),
        fields: vec![
            f("Id", Id),
            f("Name", String),
            f("Industry", Picklist),
            f("AnnualRevenue", Currency),
            f("NumberOfEmployees", Int),
            f("BillingAddress", Address),
            f("OwnerId", Reference),
            f("IsDeleted", Boolean),
            f("SystemModstamp", DateTime),
        ],
        parents: vec![parent("Owner", "OwnerId", "User")],
        children: vec![],
        queryable: true,
    };
    let case = ObjectSchema {
        name: "Case".into(),
        fields: vec![
            f("Id", Id),
            f("CaseNumber", String),
            f("Subject", String),
            f("Status", Picklist),
            f("Priority", Picklist),
            f("AccountId", Reference),
            f("IsClosed", Boolean),
            f("IsDeleted", Boolean),
            f("Description", LongTextArea),
            f("CreatedDate", DateTime),
            f("SystemModstamp", DateTime),
            f("Due__c", Date),
            f("Score__c", Double),
        ],
        parents: vec![parent("Account", "AccountId", "Account")],
        children: vec![ChildRel {
            name: "CaseComments".into(),
            object: "CaseComment".into(),
            field: "ParentId".into(),
        }],
        queryable: true,
    };
    let comment = ObjectSchema {
        name: "CaseComment".into(),
        fields: vec![
            f("Id", Id),
            f("ParentId", Reference),
            f("CommentBody", TextArea),
            f("IsPublished", Boolean),
            f("IsDeleted", Boolean),
            f("CreatedDate", DateTime),
        ],
        parents: vec![parent("Parent", "ParentId", "Case")],
        children: vec![],
        queryable: true,
    };
    let kav = ObjectSchema {
        name: "Knowledge__kav".into(),
        fields: vec![
            f("Id", Id),
            f("KnowledgeArticleId", Reference),
            f("PublishStatus", Picklist),
            f("Language", Picklist),
            f("Title", String),
            f("IsDeleted", Boolean),
        ],
        parents: vec![],
        children: vec![],
        queryable: true,
    };
    let mut d = Db {
        tables: [user, account, case, comment, kav]
            .into_iter()
            .map(|schema| Table {
                schema,
                rows: vec![],
            })
            .collect(),
        indexed: false,
    };
    d.add(
        "User",
        &[("Id", s("005000000000001AAA")), ("Name", s("Ada Admin"))],
    );
    d.add(
        "Account",
        &[
            ("Id", s("001000000000001AAA")),
            ("Name", s("Acme \"Rockets\"")),
            ("Industry", s("Aerospace")),
            ("AnnualRevenue", Value::Double(1.39e9)),
            ("NumberOfEmployees", Value::Int(250)),
            (
                "BillingAddress",
                Value::Address(Arc::new(value::Address {
                    street: Some("1 Main St\nSuite 2".into()),
                    city: Some("Springfield".into()),
                    country_code: Some("US".into()),
                    latitude: Some(37.5),
                    ..Default::default()
                })),
            ),
            ("OwnerId", s("005000000000001AAA")),
            ("IsDeleted", Value::Bool(false)),
            ("SystemModstamp", dt("2024-01-01T00:00:00Z")),
        ],
    );
    d.add(
        "Account",
        &[
            ("Id", s("001000000000002AAA")),
            ("Name", s("Émile SARL")),
            (
                "BillingAddress",
                Value::Address(Arc::new(value::Address::default())),
            ),
            ("IsDeleted", Value::Bool(false)),
        ],
    );
    // Cases: (id suffix, subject, status, account, modstamp, deleted, closed)
    let cases: &[CaseRow] = &[
        (
            "1",
            Some("Printer on fire"),
            "New",
            Some("001000000000001AAA"),
            "2024-01-01T00:00:03Z",
            false,
        ),
        ("2", None, "Closed", None, "2024-01-01T00:00:04Z", true),
        (
            "3",
            Some("printer jam"),
            "Working",
            Some("001000000000002AAA"),
            "2024-01-02T10:00:00Z",
            false,
        ),
        (
            "4",
            Some("Login_issue 100%"),
            "new",
            Some("001000000000001AAA"),
            "2024-01-02T10:00:00Z",
            false,
        ),
        (
            "5",
            Some("Zebra"),
            "Escalated",
            None,
            "2024-01-03T00:00:00Z",
            false,
        ),
    ];
    for (i, (n, subj, status, acct, ms, del)) in cases.iter().enumerate() {
        let mut vals = vec![
            ("Id", s(&format!("50000000000000{n}AAA"))),
            ("CaseNumber", s(&format!("0000100{n}"))),
            ("Status", s(status)),
            ("IsDeleted", Value::Bool(*del)),
            ("IsClosed", Value::Bool(*status == "Closed")),
            ("CreatedDate", dt("2023-12-31T23:59:59.999Z")),
            ("SystemModstamp", dt(ms)),
            ("Score__c", Value::Double(i as f64 * 0.5)),
        ];
        if let Some(sj) = subj {
            vals.push(("Subject", s(sj)));
        }
        if let Some(a) = acct {
            vals.push(("AccountId", s(a)));
        }
        if i < 2 {
            vals.push((
                "Due__c",
                Value::Date(parse_date(&format!("2024-02-0{n}")).unwrap()),
            ));
        }
        d.add("Case", &vals);
    }
    let comments = [
        (
            "00a000000000001AAA",
            "500000000000001AAA",
            "first",
            true,
            false,
        ),
        (
            "00a000000000002AAA",
            "500000000000001AAA",
            "second",
            false,
            false,
        ),
        (
            "00a000000000003AAA",
            "500000000000001AAA",
            "gone",
            true,
            true,
        ),
        (
            "00a000000000004AAA",
            "500000000000003AAA",
            "other",
            true,
            false,
        ),
    ];
    for (i, (id, parent, body, published, deleted)) in comments.into_iter().enumerate() {
        d.add(
            "CaseComment",
            &[
                ("Id", s(id)),
                ("ParentId", s(parent)),
                ("CommentBody", s(body)),
                ("IsPublished", Value::Bool(published)),
                ("IsDeleted", Value::Bool(deleted)),
                ("CreatedDate", dt(&format!("2024-01-0{}T00:00:00Z", i + 1))),
            ],
        );
    }
    d
}

fn run(d: &Db, soql: &str) -> ResultSet {
    let q = parse(soql, d).unwrap_or_else(|e| panic!("{soql}: {e}"));
    execute(&q, d, ExecOptions::default()).unwrap()
}

/// Ids (last 4 chars before the suffix) of the result rows, e.g. ["1", "3"].
fn ids(d: &Db, soql: &str) -> Vec<String> {
    let q = parse(soql, d).unwrap_or_else(|e| panic!("{soql}: {e}"));
    let rs = execute(&q, d, ExecOptions::default()).unwrap();
    rs.rows()
        .iter()
        .map(|&r| {
            let id = d.get(q.object(), r, 0);
            id.as_str().unwrap()[14..15].to_string()
        })
        .collect()
}

fn err(d: &Db, soql: &str) -> SoqlError {
    match parse(soql, d).and_then(|q| execute(&q, d, ExecOptions::default())) {
        Ok(_) => panic!("expected an error for {soql}"),
        Err(e) => e,
    }
}

fn render(d: &Db, soql: &str, ver: &str) -> String {
    let q = parse(soql, d).unwrap();
    let rs = execute(&q, d, ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    render_rows(&q, &rs, 0..rs.len(), d, ver, &mut out);
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------------------
// Parsing and validation

#[test]
fn canonical_names_and_paths() {
    let d = db();
    let q = parse(
        "select id, SUBJECT, account.name, Account.Owner.name from CASE",
        &d,
    )
    .unwrap();
    assert_eq!(q.object(), "Case");
    assert!(!q.is_count());
    assert_eq!(
        q.field_paths(),
        ["Id", "Subject", "Account.Name", "Account.Owner.Name"]
    );
    let c = parse("SELECT COUNT() FROM Case", &d).unwrap();
    assert!(c.is_count());
    assert!(c.field_paths().is_empty());
}

#[test]
fn invalid_field_message_and_column() {
    let d = db();
    let e = err(&d, "SELECT Id, Foo__c FROM Case");
    assert_eq!(e.status, 400);
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert_eq!(
        e.message,
        format!(
            "\nSELECT Id, Foo__c FROM Case\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo__c' on entity 'Case'. {CUSTOM_FIELD_HINT}"
        )
    );
    assert_eq!(
        e.to_json(),
        format!(
            "[{{\"message\":\"\\nSELECT Id, Foo__c FROM Case\\n           ^\\nERROR at Row:1:Column:12\\nNo such column 'Foo__c' on entity 'Case'. {CUSTOM_FIELD_HINT}\",\"errorCode\":\"INVALID_FIELD\"}}]"
        )
    );
    // Parent field: entity is the parent object; column is the path start.
    let e = err(&d, "SELECT Id, Account.Foo FROM Case");
    assert_eq!(
        e.message,
        format!(
            "\nSELECT Id, Account.Foo FROM Case\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Account'. {CUSTOM_FIELD_HINT}"
        )
    );
    // In WHERE, on the second row of a multi-line query.
    let e = err(&d, "SELECT Id FROM Case\nWHERE Nope = 1");
    assert!(
        e.message.starts_with("\nWHERE Nope = 1\n      ^\nERROR at Row:2:Column:7\nNo such column 'Nope' on entity 'Case'."),
        "{}",
        e.message
    );
}

#[test]
fn invalid_type_and_relationships() {
    let d = db();
    let e = err(&d, "SELECT Id FROM Cases");
    assert_eq!(e.error_code, "INVALID_TYPE");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Cases\n               ^\nERROR at Row:1:Column:16\nsObject type 'Cases' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names."
    );
    let e = err(&d, "SELECT Acct.Name FROM Case");
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert!(e.message.ends_with("ERROR at Row:1:Column:8\nDidn't understand relationship 'Acct' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."), "{}", e.message);
    let e = err(&d, "SELECT Id, (SELECT Id FROM Comments) FROM Case");
    assert_eq!(e.error_code, "INVALID_TYPE");
    assert!(e.message.contains("ERROR at Row:1:Column:28\nDidn't understand relationship 'Comments' in FROM part of query call."), "{}", e.message);
    // Object is checked before fields.
    assert_eq!(err(&d, "SELECT Nope FROM Nope").error_code, "INVALID_TYPE");
}

#[test]
fn quoted_datetime_and_type_errors() {
    let d = db();
    let e = err(
        &d,
        "SELECT Id FROM Case WHERE SystemModstamp > '2024-01-01T00:00:00Z'",
    );
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert_eq!(
        e.message,
        "\nSELECT Id FROM Case WHERE SystemModstamp > '2024-01-01T00:00:00Z'\n                                           ^\nERROR at Row:1:Column:44\nvalue of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes"
    );
    let e = err(&d, "SELECT Id FROM Case WHERE Due__c = '2024-01-01'");
    assert!(e.message.ends_with("value of filter criterion for field 'Due__c' must be of type date and should not be enclosed in quotes"));
    let e = err(&d, "SELECT Id FROM Case WHERE Subject = 5");
    assert!(e.message.ends_with("value of filter criterion for field 'Subject' must be of type string and should be enclosed in quotes"));
    let e = err(&d, "SELECT Id FROM Case WHERE IsClosed = 'true'");
    assert!(
        e.message
            .ends_with("must be of type boolean and should not be enclosed in quotes")
    );
    let e = err(&d, "SELECT Id FROM Case WHERE Id = 'abc'");
    assert_eq!(e.error_code, "INVALID_QUERY_FILTER_OPERATOR");
    assert!(
        e.message
            .ends_with("ERROR at Row:1:Column:32\ninvalid ID field: abc"),
        "{}",
        e.message
    );
    let e = err(&d, "SELECT Id FROM Case WHERE Description = 'x'");
    assert_eq!(e.error_code, "INVALID_FIELD");
    assert!(e.message.ends_with(
        "ERROR at Row:1:Column:27\nfield 'Description' can not be filtered in a query call"
    ));
    let e = err(&d, "SELECT Id FROM Case ORDER BY description");
    assert!(e.message.ends_with(
        "ERROR at Row:1:Column:30\nfield 'Description' can not be sorted in a query call"
    ));
}

#[test]
fn plus_sent_as_space_is_malformed() {
    let d = db();
    let q = "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-01T00:00:00 00:00";
    let e = err(&d, q);
    assert_eq!((e.status, e.error_code), (400, "MALFORMED_QUERY"));
    assert_eq!(
        e.message,
        format!(
            "\nWHERE SystemModstamp > 2024-01-01T00:00:00 00:00\n{}^\nERROR at Row:1:Column:62\nline 1:62 no viable alternative at character ' '",
            " ".repeat(41)
        )
    );
    // Same with milliseconds (recorded shape: "… 2017-03-21T12:11:06.000 0000").
    let e = err(
        &d,
        "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-01T00:00:00.000 0000",
    );
    assert!(
        e.message
            .ends_with("line 1:66 no viable alternative at character ' '"),
        "{}",
        e.message
    );
    // Encoded properly it parses.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-01T00:00:00+00:00 ORDER BY Id"
        ),
        ["1", "3", "4", "5"]
    );
}

#[test]
fn syntax_errors() {
    let d = db();
    let e = err(&d, "SELECT Id FORM Case");
    assert_eq!(e.error_code, "MALFORMED_QUERY");
    assert!(e.message.ends_with("unexpected token: 'FORM'"));
    assert!(
        err(&d, "SELECT Id FROM Case LIMIT -1")
            .message
            .ends_with("unexpected token: '-1'")
    );
    assert!(
        err(&d, "SELECT Id FROM Case WHERE Subject = \"x\"")
            .message
            .contains("no viable alternative at character '\"'")
    );
    assert!(
        err(&d, "SELECT Id, Id FROM Case")
            .message
            .ends_with("duplicate field selected: Id")
    );
}

#[test]
fn fields_function_and_offset_limits() {
    let d = db();
    let e = err(&d, "SELECT FIELDS(ALL) FROM Case");
    assert_eq!(e.error_code, "MALFORMED_QUERY");
    assert_eq!(
        e.message,
        "\nSELECT FIELDS(ALL) FROM Case\n       ^\nERROR at Row:1:Column:8\nThe SOQL FIELDS function must have a LIMIT of at most 200"
    );
    assert!(parse("SELECT FIELDS(CUSTOM) FROM Case LIMIT 201", &d).is_err());
    let q = parse("SELECT FIELDS(CUSTOM) FROM Case LIMIT 200", &d).unwrap();
    assert_eq!(q.field_paths(), ["Due__c", "Score__c"]);
    let q = parse("SELECT Id, FIELDS(STANDARD) FROM Account", &d).unwrap();
    assert_eq!(q.field_paths().len(), 9);
    assert!(q.has_compound_fields());
    let e = err(&d, "SELECT Id FROM Case OFFSET 2001");
    assert_eq!(e.error_code, "NUMBER_OUTSIDE_VALID_RANGE");
    assert_eq!(e.message, "Maximum SOQL offset allowed is 2000");
    assert!(parse("SELECT Id FROM Case OFFSET 2000", &d).is_ok());
}

#[test]
fn knowledge_publish_status_rule() {
    let mut d = db();
    for (id, status) in [
        ("ka0000000000001AAA", "Online"),
        ("ka0000000000002AAA", "Draft"),
    ] {
        d.add(
            "Knowledge__kav",
            &[
                ("Id", s(id)),
                ("PublishStatus", s(status)),
                ("Language", s("en_US")),
            ],
        );
    }
    let msg = "Implementation restriction: When querying or searching the Knowledge__kav object, you must filter using the following syntax: Id = [single ID], Id IN [list of IDs], or PublishStatus = [status]. In addition PublishStatus is only permitted in a top-level AND condition.";
    for bad in [
        "SELECT Id FROM Knowledge__kav",
        "SELECT Id FROM knowledge__KAV WHERE Language = 'en_US'",
        "SELECT Id FROM Knowledge__kav WHERE PublishStatus = 'Online' OR Language = 'en_US'",
        "SELECT Id FROM Knowledge__kav WHERE PublishStatus IN ('Online', 'Draft')",
        "SELECT Id FROM Knowledge__kav WHERE PublishStatus != 'Online'",
    ] {
        let e = err(&d, bad);
        assert_eq!(
            (e.error_code, e.message.as_str()),
            ("MALFORMED_QUERY", msg),
            "{bad}"
        );
    }
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Knowledge__kav WHERE PublishStatus = 'online' AND Language = 'en_US'"
        ),
        ["1"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Knowledge__kav WHERE Id = 'ka0000000000002AAA'"
        ),
        ["2"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Knowledge__kav WHERE Id IN ('ka0000000000002AAA') AND Language = 'en_US'"
        ),
        ["2"]
    );
    let lax = ParseOptions {
        knowledge_publish_status_rule: false,
        ..Default::default()
    };
    assert!(parse_with("SELECT Id FROM Knowledge__kav", &d, &lax).is_ok());
}

// ---------------------------------------------------------------------------
// Evaluation

#[test]
fn where_semantics() {
    let d = db();
    // Case-insensitive string and picklist equality; deleted rows hidden on /query.
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Status = 'NEW' ORDER BY Id"),
        ["1", "4"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Subject = 'PRINTER ON FIRE'"),
        ["1"]
    );
    // != includes nulls (two-valued logic); = null / != null.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE AccountId != '001000000000001AAA' ORDER BY Id"
        ),
        ["3", "5"]
    );
    assert_eq!(ids(&d, "SELECT Id FROM Case WHERE AccountId = null"), ["5"]);
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE AccountId != NULL ORDER BY Id"
        ),
        ["1", "3", "4"]
    );
    // 15-char id literal matches the 18-char value.
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Id = '500000000000003'"),
        ["3"]
    );
    // LIKE: case-insensitive, % and _, escaped wildcards.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Subject LIKE 'printer%' ORDER BY Id"
        ),
        ["1", "3"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Subject LIKE '%_JAM'"),
        ["3"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Subject LIKE 'login\\_issue 100\\%'"
        ),
        ["4"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Subject LIKE 'login\\_issue 10\\%'"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Subject LIKE 'z_bra'"),
        ["5"]
    );
    // IN / NOT IN (NOT IN keeps nulls).
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Status IN ('working', 'Escalated') ORDER BY Id"
        ),
        ["3", "5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Subject NOT IN ('zebra', 'Printer on fire') ORDER BY Id"
        ),
        ["3", "4"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE AccountId NOT IN ('001000000000001AAA') ORDER BY Id"
        ),
        ["3", "5"]
    );
    // Booleans, numbers, NOT, parentheses.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE IsClosed = false AND Score__c >= 1 ORDER BY Id"
        ),
        ["3", "4", "5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE NOT (Status = 'new' OR Score__c < 1.5) ORDER BY Id"
        ),
        ["5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Account.Name LIKE 'acme%' AND (Status = 'New' OR Status = 'Working') ORDER BY Id"
        ),
        ["1", "4"]
    );
    // Dates.
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Due__c = 2024-02-01"),
        ["1"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Due__c > 2024-01-31"),
        ["1"]
    );
}

#[test]
fn datetime_literal_forms() {
    let d = db();
    let expect = ["3", "4", "5"];
    for lit in [
        "2024-01-02T10:00:00Z",
        "2024-01-02T10:00:00.000Z",
        "2024-01-02T15:30:00+05:30",
        "2024-01-02T15:30:00.000+05:30",
        "2024-01-02T05:00:00-05:00",
        "2024-01-02T10:00:00.000+0000",
    ] {
        assert_eq!(
            ids(
                &d,
                &format!("SELECT Id FROM Case WHERE SystemModstamp >= {lit} ORDER BY Id")
            ),
            expect,
            "{lit}"
        );
    }
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-02T10:00:00Z"
        ),
        ["5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE SystemModstamp > 2024-01-01T00:00:03Z AND SystemModstamp <= 2024-01-02T10:00:00.000Z ORDER BY SystemModstamp, Id"
        ),
        ["3", "4"]
    );
    // Millisecond precision.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE CreatedDate = 2023-12-31T23:59:59.999Z"
        )
        .len(),
        4
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE CreatedDate = 2023-12-31T23:59:59Z"
        )
        .len(),
        0
    );
}

#[test]
fn relative_date_literals() {
    let d = db();
    let opts = ParseOptions {
        now_ms: parse_datetime("2024-01-02T12:00:00Z"),
        ..Default::default()
    };
    let run_at = |soql: &str| {
        let q = parse_with(soql, &d, &opts).unwrap();
        execute(&q, &d, ExecOptions::default()).unwrap().len()
    };
    assert_eq!(
        run_at("SELECT Id FROM Case WHERE SystemModstamp = TODAY"),
        2
    );
    assert_eq!(
        run_at("SELECT Id FROM Case WHERE SystemModstamp = YESTERDAY"),
        1
    );
    assert_eq!(
        run_at("SELECT Id FROM Case WHERE SystemModstamp > TODAY"),
        1
    );
    assert_eq!(
        run_at("SELECT Id FROM Case WHERE SystemModstamp = LAST_N_DAYS:1"),
        3
    );
    assert_eq!(
        run_at("SELECT Id FROM Case WHERE CreatedDate < THIS_MONTH"),
        4
    );
    assert_eq!(run_at("SELECT Id FROM Case WHERE Due__c = NEXT_MONTH"), 1);
}

#[test]
fn order_by_nulls_limit_offset() {
    let d = db();
    // Case-insensitive text order; nulls first by default, ASC and DESC alike.
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Subject"),
        ["4", "3", "1", "5"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY AccountId, Id"),
        ["5", "1", "4", "3"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY AccountId DESC, Id"),
        ["5", "3", "1", "4"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case ORDER BY AccountId DESC NULLS LAST, Id"
        ),
        ["3", "1", "4", "5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case ORDER BY AccountId NULLS LAST, Id DESC"
        ),
        ["4", "1", "3", "5"]
    );
    // Case-insensitive text ordering; parent field ordering (null lookup first).
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Status, Id"),
        ["5", "1", "4", "3"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Account.Name DESC, Id"),
        ["5", "3", "1", "4"]
    );
    // LIMIT / OFFSET.
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Id LIMIT 2"),
        ["1", "3"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Id LIMIT 2 OFFSET 1"),
        ["3", "4"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case ORDER BY Id OFFSET 10").len(),
        0
    );
    assert_eq!(run(&d, "SELECT Id FROM Case LIMIT 0").total_size(), 0);
}

#[test]
fn deleted_visibility_and_count() {
    let d = db();
    let q = parse("SELECT Id FROM Case ORDER BY Id", &d).unwrap();
    let all = execute(
        &q,
        &d,
        ExecOptions {
            include_deleted: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(all.rows(), [0, 1, 2, 3, 4]);
    let hide3 = |r: RowId| r != 3;
    let vis = execute(
        &q,
        &d,
        ExecOptions {
            include_deleted: false,
            visible: Some(&hide3),
        },
    )
    .unwrap();
    assert_eq!(vis.rows(), [0, 2, 4]);
    // IsDeleted = true on /query returns nothing.
    assert_eq!(
        run(&d, "SELECT Id FROM Case WHERE IsDeleted = true").total_size(),
        0
    );
    let c = run(&d, "SELECT COUNT() FROM Case WHERE Status = 'new'");
    assert_eq!((c.total_size(), c.len()), (2, 0));
    assert_eq!(run(&d, "SELECT COUNT() FROM Case").total_size(), 4);
    assert_eq!(run(&d, "SELECT COUNT() FROM Case LIMIT 3").total_size(), 3);
}

#[test]
fn sorted_index_path_matches_scan() {
    let mut plain = db();
    // 2,000 extra cases with colliding modstamps and some nulls.
    for i in 0..2000u32 {
        let ms = if i % 97 == 0 {
            Value::Null
        } else {
            Value::DateTime(
                parse_datetime("2024-03-01T00:00:00Z").unwrap() + ((i * 7919) % 500) as i64 * 1000,
            )
        };
        plain.add(
            "Case",
            &[
                ("Id", s(&format!("500{:012}AAA", 100_000 + (i * 31) % 2000))),
                ("IsDeleted", Value::Bool(i % 11 == 0)),
                ("SystemModstamp", ms),
            ],
        );
    }
    let queries = [
        "SELECT Id FROM Case WHERE SystemModstamp > 2024-03-01T00:01:00Z AND SystemModstamp <= 2024-03-01T00:05:00Z ORDER BY SystemModstamp, Id",
        "SELECT Id FROM Case WHERE SystemModstamp >= 2024-03-01T00:01:00Z AND SystemModstamp < 2024-03-01T00:05:00Z ORDER BY SystemModstamp ASC, Id ASC LIMIT 300 OFFSET 7",
        "SELECT Id FROM Case ORDER BY SystemModstamp, Id",
        "SELECT Id FROM Case WHERE SystemModstamp = 2024-03-01T00:02:00Z ORDER BY Id DESC",
        "SELECT Id FROM Case WHERE SystemModstamp < 2024-03-01T00:00:10Z ORDER BY SystemModstamp, Id",
        "SELECT COUNT() FROM Case WHERE SystemModstamp > 2024-03-01T00:01:00Z",
    ];
    for soql in queries {
        plain.indexed = false;
        let q = parse(soql, &plain).unwrap();
        let a = execute(&q, &plain, ExecOptions::default()).unwrap();
        plain.indexed = true;
        let b = execute(&q, &plain, ExecOptions::default()).unwrap();
        assert!(a.total_size() > 0, "{soql}");
        assert_eq!(a.rows(), b.rows(), "{soql}");
        assert_eq!(a.total_size(), b.total_size(), "{soql}");
    }
}

// ---------------------------------------------------------------------------
// Rendering

#[test]
fn render_record_shapes() {
    let d = db();
    let got = render(
        &d,
        "select id, subject, account.name, Account.Owner.Name, account.industry, isdeleted, systemmodstamp, score__c, due__c FROM Case WHERE Id IN ('500000000000001AAA', '500000000000005AAA') ORDER BY Id",
        "62.0",
    );
    let want = concat!(
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000001AAA"},"#,
        r#""Id":"500000000000001AAA","Subject":"Printer on fire","#,
        r#""Account":{"attributes":{"type":"Account","url":"/services/data/v62.0/sobjects/Account/001000000000001AAA"},"Name":"Acme \"Rockets\"","Owner":{"attributes":{"type":"User","url":"/services/data/v62.0/sobjects/User/005000000000001AAA"},"Name":"Ada Admin"},"Industry":"Aerospace"},"#,
        r#""IsDeleted":false,"SystemModstamp":"2024-01-01T00:00:03.000+0000","Score__c":0.0,"Due__c":"2024-02-01"},"#,
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000005AAA"},"#,
        r#""Id":"500000000000005AAA","Subject":"Zebra","Account":null,"IsDeleted":false,"SystemModstamp":"2024-01-03T00:00:00.000+0000","Score__c":2.0,"Due__c":null}"#,
    );
    assert_eq!(got, want);
}

#[test]
fn render_numbers_address_and_escapes() {
    let d = db();
    let got = render(
        &d,
        "SELECT Name, AnnualRevenue, NumberOfEmployees, BillingAddress FROM Account ORDER BY Name",
        "v58.0",
    );
    let want = concat!(
        r#"{"attributes":{"type":"Account","url":"/services/data/v58.0/sobjects/Account/001000000000001AAA"},"#,
        r#""Name":"Acme \"Rockets\"","AnnualRevenue":1.39E9,"NumberOfEmployees":250,"#,
        r#""BillingAddress":{"city":"Springfield","country":null,"countryCode":"US","geocodeAccuracy":null,"latitude":37.5,"longitude":null,"postalCode":null,"state":null,"stateCode":null,"street":"1 Main St\nSuite 2"}},"#,
        r#"{"attributes":{"type":"Account","url":"/services/data/v58.0/sobjects/Account/001000000000002AAA"},"#,
        r#""Name":"Émile SARL","AnnualRevenue":null,"NumberOfEmployees":null,"BillingAddress":null}"#,
    );
    assert_eq!(got, want);
    let mut out = Vec::new();
    render::write_json_str(&mut out, "a\u{1}b\u{1f}\t\"\\/é😀\u{2028}");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"a\\u0001b\\u001f\\t\\\"\\\\/é😀\u{2028}\""
    );
}

#[test]
fn render_child_subquery() {
    let d = db();
    let q = parse(
        "SELECT Id, (SELECT Id, CommentBody FROM CaseComments WHERE IsPublished = true ORDER BY CreatedDate DESC) FROM Case WHERE Id IN ('500000000000001AAA','500000000000003AAA','500000000000004AAA') ORDER BY Id",
        &d,
    )
    .unwrap();
    assert!(q.has_subqueries());
    let rs = execute(&q, &d, ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    render_rows(&q, &rs, 0..3, &d, "62.0", &mut out);
    let want = concat!(
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000001AAA"},"Id":"500000000000001AAA","#,
        r#""CaseComments":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"CaseComment","url":"/services/data/v62.0/sobjects/CaseComment/00a000000000001AAA"},"Id":"00a000000000001AAA","CommentBody":"first"}]}},"#,
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000003AAA"},"Id":"500000000000003AAA","#,
        r#""CaseComments":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"CaseComment","url":"/services/data/v62.0/sobjects/CaseComment/00a000000000004AAA"},"Id":"00a000000000004AAA","CommentBody":"other"}]}},"#,
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000004AAA"},"Id":"500000000000004AAA","CaseComments":null}"#,
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);
    // Without a filter: ordered, deleted comment hidden on /query, shown on queryAll.
    let q = parse(
        "SELECT Id, (SELECT CommentBody FROM CaseComments ORDER BY CommentBody DESC) FROM Case WHERE Id = '500000000000001AAA'",
        &d,
    )
    .unwrap();
    for (all, want) in [
        (false, "\"second\",\"first\""),
        (true, "\"second\",\"gone\",\"first\""),
    ] {
        let rs = execute(
            &q,
            &d,
            ExecOptions {
                include_deleted: all,
                ..Default::default()
            },
        )
        .unwrap();
        let mut out = Vec::new();
        render_rows(&q, &rs, 0..1, &d, "62.0", &mut out);
        let text = String::from_utf8(out).unwrap();
        let bodies: Vec<&str> = text
            .split("\"CommentBody\":")
            .skip(1)
            .map(|p| &p[..p.find('}').unwrap()])
            .collect();
        assert_eq!(bodies.join(","), want);
    }
    // Range rendering: second page only.
    let q = parse("SELECT Id FROM Case ORDER BY Id", &d).unwrap();
    let rs = execute(&q, &d, ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    render_rows(&q, &rs, 3..10, &d, "62.0", &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"attributes":{"type":"Case","url":"/services/data/v62.0/sobjects/Case/500000000000005AAA"},"Id":"500000000000005AAA"}"#
    );
}

#[test]
fn csv_round_trip() {
    let d = db();
    let q = parse(
        "SELECT Id, Subject, Account.Name, IsClosed, SystemModstamp, Score__c, Due__c FROM Case ORDER BY Id LIMIT 3",
        &d,
    )
    .unwrap();
    let rs = execute(&q, &d, ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    render_csv_header(&q, &mut out);
    render_csv_rows(&q, &rs, 0..rs.len(), &d, &mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        r#""Id","Subject","Account.Name","IsClosed","SystemModstamp","Score__c","Due__c""#
    );
    assert_eq!(
        text.lines().nth(1).unwrap(),
        r#""500000000000001AAA","Printer on fire","Acme ""Rockets""","false","2024-01-01T00:00:03.000+0000","0.0","2024-02-01""#
    );
    assert!(text.ends_with('\n') && !text.contains('\r'));
    let mut rdr = csv::Reader::from_reader(&out[..]);
    let headers = rdr.headers().unwrap().clone();
    assert_eq!(headers.iter().collect::<Vec<_>>(), q.field_paths());
    let recs: Vec<csv::StringRecord> = rdr.records().map(|r| r.unwrap()).collect();
    assert_eq!(recs.len(), 3);
    assert_eq!(&recs[0][2], "Acme \"Rockets\"");
    assert_eq!(&recs[1][0], "500000000000003AAA");
    assert_eq!(&recs[1][2], "Émile SARL");
    assert_eq!(&recs[2][6], "", "null date is empty");
    assert_eq!(&recs[2][5], "1.5");
}

#[test]
fn id_lookup_and_early_limit() {
    let d = db();
    // 18-char ids go through by_id; 15-char ones scan; both give the same rows.
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Id IN ('500000000000005AAA', '500000000000001AAA', '500000000000002AAA') ORDER BY Id"
        ),
        ["1", "5"]
    );
    assert_eq!(
        ids(
            &d,
            "SELECT Id FROM Case WHERE Id IN ('500000000000005', '500000000000001') AND Status != 'New'"
        ),
        ["5"]
    );
    assert_eq!(
        ids(&d, "SELECT Id FROM Case WHERE Id = '500000000000009AAA'").len(),
        0
    );
    assert_eq!(ids(&d, "SELECT Id FROM Case LIMIT 2 OFFSET 1"), ["3", "4"]);
    assert_eq!(
        run(&d, "SELECT COUNT() FROM Case WHERE Status != 'x' LIMIT 2").total_size(),
        2
    );
}

#[test]
fn csv_options() {
    let d = db();
    let q = parse(
        "SELECT Id, SystemModstamp, Due__c FROM Case WHERE Id = '500000000000001AAA'",
        &d,
    )
    .unwrap();
    let rs = execute(&q, &d, ExecOptions::default()).unwrap();
    let mut out = Vec::new();
    let opts = CsvOptions {
        crlf: true,
        datetime_z: true,
        ..CsvOptions::default()
    };
    render_csv_header_with(&q, opts, &mut out);
    render_csv_rows_with(&q, &rs, 0..1, &d, opts, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "\"Id\",\"SystemModstamp\",\"Due__c\"\r\n\"500000000000001AAA\",\"2024-01-01T00:00:03.000Z\",\"2024-02-01\"\r\n"
    );
}
