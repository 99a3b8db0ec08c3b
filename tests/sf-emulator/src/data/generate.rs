//! Deterministic, seeded data generator.
//!
//! Every pristine row is a pure function of `(seed, object, row number)`, so tables of a
//! million rows cost nothing until read. Timestamps are spread over the 20 days before
//! the anchor (midnight UTC of the start day, unless configured), grow with the row
//! number, and some runs of rows deliberately share one `SystemModstamp` (mass updates).

use std::sync::Arc;

use super::{CursorFn, GenFn, RowState, Store, Table, Val};
use crate::dt::DAY_MS;
use crate::ids;
use crate::schema::{self, ObjectDef};

/// Which rows to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    /// At least 1,000 Cases and hundreds of every other object.
    Demo,
    /// `scale` Cases and proportionally fewer of the others.
    Bench,
    /// Only the integration user.
    Empty,
}

/// Row counts per object.
#[derive(Clone, Copy, Debug)]
pub struct Counts {
    pub account: u32,
    pub contact: u32,
    pub lead: u32,
    pub opportunity: u32,
    pub user: u32,
    pub task: u32,
    pub case: u32,
    pub comment: u32,
    pub email: u32,
    pub history: u32,
    pub articles: u32,
}

impl Counts {
    /// Counts for a dataset; `scale` is the Case count for [`Dataset::Bench`].
    pub fn of(dataset: Dataset, scale: usize) -> Counts {
        match dataset {
            Dataset::Demo => Counts {
                account: 300,
                contact: 600,
                lead: 300,
                opportunity: 400,
                user: 60,
                task: 800,
                case: 1200,
                comment: 2400,
                email: 1500,
                history: 2400,
                articles: 150,
            },
            Dataset::Bench => {
                let n = scale.min(5_000_000) as u32;
                Counts {
                    account: (n / 20).max(50),
                    contact: (n / 10).max(100),
                    lead: (n / 20).max(50),
                    opportunity: (n / 20).max(50),
                    user: (n / 500).clamp(20, 2000),
                    task: n / 5,
                    case: n,
                    comment: n,
                    email: n / 2,
                    history: n,
                    articles: (n / 1000).clamp(20, 2000),
                }
            }
            Dataset::Empty => Counts {
                account: 0,
                contact: 0,
                lead: 0,
                opportunity: 0,
                user: 1,
                task: 0,
                case: 0,
                comment: 0,
                email: 0,
                history: 0,
                articles: 0,
            },
        }
    }
}

/// Inputs shared by every generator function.
#[derive(Clone, Debug)]
pub struct GenCtx {
    pub seed: u64,
    pub counts: Counts,
    /// Epoch ms of the end of the generated time span.
    pub anchor: i64,
    /// Username of user 0, the integration user.
    pub admin_username: String,
}

/// A small, fast, stable PRNG (SplitMix64). Stable across crate upgrades, unlike `rand`'s
/// generators, so a seed always yields the same org.
pub struct Rng(u64);

impl Rng {
    /// A generator for row `i` of the object tagged `tag`.
    pub fn for_row(seed: u64, tag: u64, i: u32) -> Rng {
        let mut r = Rng(seed ^ tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((i as u64) << 20));
        r.next_u64();
        r
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    /// One element of a non-empty slice.
    pub fn pick<'a>(&mut self, s: &'a [&'a str]) -> &'a str {
        s[self.below(s.len() as u64) as usize]
    }
}

const FIRST: &[&str] = &[
    "Ana",
    "Björn",
    "Chloé",
    "Dmitri",
    "Émilie",
    "François",
    "Günther",
    "Hiroshi",
    "Ingrid",
    "José",
    "Kateřina",
    "Łukasz",
    "María",
    "Nguyễn",
    "Øystein",
    "Priya",
    "Renée",
    "Søren",
    "Tomás",
    "Ümit",
    "Wei",
    "Xóchitl",
    "Yusuf",
    "Zoë",
    "John",
    "Mary",
    "Sam",
    "Olivia",
    "Liam",
    "Noah",
    "Emma",
    "Ava",
    "Олег",
    "さくら",
    "Fatima",
    "Aarav",
];
const LAST: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Novák",
    "Kowalski",
    "O'Brien",
    "Dubois",
    "Rossi",
    "Tanaka",
    "Nguyen",
    "Andersson",
    "Øvergaard",
    "Papadopoulos",
    "Yılmaz",
    "Kim",
    "Johnson",
    "Lee",
    "Brown",
    "Иванов",
    "李",
    "Fernández",
    "Schäfer",
    "Horváth",
    "Silva",
    "van der Berg",
];
const ASCII_FIRST: &[&str] = &[
    "ana", "bjorn", "chloe", "dmitri", "emilie", "francois", "gunther", "hiroshi", "ingrid",
    "jose", "katerina", "lukasz", "maria", "nguyen", "oystein", "priya",
];
const COMPANY_A: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
    "Vandelay",
    "Nakatomi",
    "Sirius",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Zürich Rück",
    "Société Générale d'Essai",
    "東京データ",
    "Åkerlund & Rausing",
];
const COMPANY_B: &[&str] = &[
    "Corp",
    "Inc.",
    "GmbH",
    "S.A.",
    "Ltd",
    "Holdings",
    "Industries",
    "Labs",
    "K.K.",
    "AB",
];
const PRODUCTS: &[&str] = &[
    "Printer",
    "Router",
    "Laptop",
    "Billing portal",
    "Mobile app",
    "VPN",
    "Badge reader",
    "Conveyor belt",
    "Thermostat",
    "Dashboard",
    "API gateway",
    "Invoice PDF",
];
const PROBLEMS: &[&str] = &[
    "on fire 🔥",
    "won't start",
    "shows error 0x80070005",
    "is slow since the update",
    "returns \"Access denied\"",
    "keeps rebooting",
    "charges twice",
    "lost its configuration",
    "makes a grinding noise",
    "can't connect — timeout",
    "displays garbled text: Ã©",
    "needs a replacement",
];
const SENTENCES: &[&str] = &[
    "The customer reported the issue after this morning's maintenance window.",
    "Steps to reproduce: open the app, click Save, wait ten seconds.",
    "We already tried restarting the device and clearing the cache.",
    "Le client signale que le problème persiste malgré la mise à jour.",
    "Der Fehler tritt nur bei großen Dateien auf.",
    "お客様から再起動後も同じエラーが出ると連絡がありました。",
    "Please escalate if no response within 4 hours.",
    "Attached logs show a spike in latency around 03:00 UTC.",
    "Line one\nLine two after a newline, with a tab\there.",
    "Quote test: she said \"it's broken\" and left; 50% of users affected.",
];
const CITIES: &[(&str, &str, &str, &str, f64, f64)] = &[
    (
        "San Francisco",
        "CA",
        "94105",
        "United States",
        37.79,
        -122.39,
    ),
    ("New York", "NY", "10001", "United States", 40.75, -73.99),
    ("London", "", "EC1A 1BB", "United Kingdom", 51.52, -0.10),
    ("Paris", "", "75002", "France", 48.87, 2.34),
    ("München", "BY", "80331", "Germany", 48.14, 11.57),
    ("東京", "", "100-0005", "Japan", 35.68, 139.77),
    ("São Paulo", "SP", "01310-100", "Brazil", -23.56, -46.65),
    ("Zürich", "ZH", "8001", "Switzerland", 47.37, 8.54),
];
const STREETS: &[&str] = &[
    "1 Market St",
    "350 Fifth Avenue\nSuite 3300",
    "10 Downing Street",
    "12 Rue de la Paix",
    "Marienplatz 8",
    "1-1 Marunouchi",
    "Av. Paulista, 1578",
    "Bahnhofstrasse 45",
];

/// Tag constants that keep each object's random stream independent.
mod tag {
    pub const ACCOUNT: u64 = 1;
    pub const CONTACT: u64 = 2;
    pub const LEAD: u64 = 3;
    pub const OPP: u64 = 4;
    pub const USER: u64 = 5;
    pub const TASK: u64 = 6;
    pub const CASE: u64 = 7;
    pub const COMMENT: u64 = 8;
    pub const EMAIL: u64 = 9;
    pub const HISTORY: u64 = 10;
    pub const KNOWLEDGE: u64 = 11;
}

/// Span of generated timestamps.
const SPAN_MS: i64 = 20 * DAY_MS;

impl GenCtx {
    /// `(CreatedDate, LastModifiedDate, SystemModstamp)` of pristine row `i` of `n`.
    ///
    /// SystemModstamp grows with `i` (so pristine rows are already in cursor order);
    /// every eighth run of 25 rows shares one SystemModstamp; one row in ten had a
    /// "system" update after its last user edit.
    pub fn times(&self, tag: u64, i: u32, n: u32) -> (i64, i64, i64) {
        let slot = if (i / 25) % 8 == 3 { i - i % 25 } else { i } as i64;
        let start = self.anchor - SPAN_MS;
        let sms = start + slot * SPAN_MS / (n.max(1) as i64);
        let sms = sms - sms.rem_euclid(1000);
        let mut r = Rng::for_row(self.seed, tag + 1000, i);
        let sys_delta = if r.chance(10) {
            (1 + r.below(3600) as i64) * 1000
        } else {
            0
        };
        let lmd = sms - sys_delta;
        let created = lmd - (r.below(5 * 86_400) as i64) * 1000;
        (created, lmd, sms)
    }

    fn user_id(&self, r: &mut Rng) -> Val {
        id_val("005", r.below(self.counts.user.max(1) as u64))
    }
}

fn id_val(prefix: &str, n: u64) -> Val {
    Val::s(ids::make(prefix, n))
}

fn opt(r: &mut Rng, pct: u64, v: impl FnOnce(&mut Rng) -> Val) -> Val {
    if r.chance(pct) { v(r) } else { Val::Null }
}

fn person(r: &mut Rng) -> (&'static str, &'static str) {
    (r.pick(FIRST), r.pick(LAST))
}

fn company(r: &mut Rng) -> String {
    format!("{} {}", r.pick(COMPANY_A), r.pick(COMPANY_B))
}

fn long_text(r: &mut Rng, max_sentences: u64) -> String {
    let n = 1 + r.below(max_sentences);
    let mut s = String::new();
    for k in 0..n {
        if k > 0 {
            s.push(' ');
        }
        s.push_str(r.pick(SENTENCES));
    }
    s
}

/// Sets fields by name; fields must be set in schema order for O(1) lookups.
struct RowB<'a> {
    def: &'a ObjectDef,
    vals: Vec<Val>,
    pos: usize,
}

impl<'a> RowB<'a> {
    fn new(def: &'a ObjectDef) -> Self {
        RowB {
            def,
            vals: vec![Val::Null; def.fields.len()],
            pos: 0,
        }
    }
    fn set(&mut self, name: &str, v: Val) -> &mut Self {
        let n = self.def.fields.len();
        for k in 0..n {
            let i = (self.pos + k) % n;
            if self.def.fields[i].name == name {
                self.vals[i] = v;
                self.pos = i + 1;
                return self;
            }
        }
        panic!("{} has no field {name}", self.def.name);
    }
    fn str(&mut self, name: &str, v: impl Into<Arc<str>>) -> &mut Self {
        self.set(name, Val::Str(v.into()))
    }
    fn sys(&mut self, ctx: &GenCtx, r: &mut Rng, times: (i64, i64, i64)) -> &mut Self {
        let (c, l, s) = times;
        let by = ctx.user_id(r);
        if self.def.has("IsDeleted") {
            self.set("IsDeleted", Val::Bool(false));
        }
        self.set("CreatedById", by.clone());
        self.set("CreatedDate", Val::DateTime(c));
        if self.def.has("SystemModstamp") {
            self.set("LastModifiedById", by);
            self.set("LastModifiedDate", Val::DateTime(l));
            self.set("SystemModstamp", Val::DateTime(s));
        }
        self
    }
    fn address(&mut self, r: &mut Rng, prefix: &str, pct: u64) -> &mut Self {
        if !r.chance(pct) {
            return self;
        }
        let (city, state, zip, country, lat, lon) = CITIES[r.below(CITIES.len() as u64) as usize];
        let street = r.pick(STREETS);
        self.str(&format!("{prefix}Street"), street);
        self.str(&format!("{prefix}City"), city);
        if !state.is_empty() {
            self.str(&format!("{prefix}State"), state);
        }
        self.str(&format!("{prefix}PostalCode"), zip);
        self.str(&format!("{prefix}Country"), country);
        if r.chance(60) {
            self.set(&format!("{prefix}Latitude"), Val::Num(lat));
            self.set(&format!("{prefix}Longitude"), Val::Num(lon));
            self.str(&format!("{prefix}GeocodeAccuracy"), "Address");
        }
        self
    }
    fn done(self) -> Box<[Val]> {
        self.vals.into_boxed_slice()
    }
}

fn gen_account(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::ACCOUNT, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("001", i as u64))
        .str("Name", format!("{} #{i}", company(&mut r)));
    let t = r.pick(&[
        "Prospect",
        "Customer - Direct",
        "Customer - Channel",
        "Partner",
    ]);
    b.set("Type", opt(&mut r, 80, |_| Val::s(t)));
    if i > 0 && r.chance(10) {
        let p = r.below(i as u64);
        b.set("ParentId", id_val("001", p));
    }
    b.str("AccountNumber", format!("CD{:06}", 100_000 + i));
    let ind = r.pick(&[
        "Banking",
        "Education",
        "Energy",
        "Healthcare",
        "Retail",
        "Technology",
    ]);
    b.set("Industry", opt(&mut r, 85, |_| Val::s(ind)));
    let rev = r.below(500_000_000) as f64;
    b.set("AnnualRevenue", opt(&mut r, 70, |_| Val::Num(rev)));
    let emp = r.below(100_000) as i64;
    b.set("NumberOfEmployees", opt(&mut r, 70, |_| Val::Int(emp)));
    b.set(
        "Phone",
        opt(&mut r, 80, |r| {
            Val::s(format!("+1 415 555 {:04}", r.below(10_000)))
        }),
    );
    b.set(
        "Website",
        opt(&mut r, 60, |_| {
            Val::s(format!("https://www.example{i}.com"))
        }),
    );
    b.set("Description", opt(&mut r, 40, |r| Val::s(long_text(r, 4))));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    b.address(&mut r, "Billing", 80)
        .address(&mut r, "Shipping", 50);
    let (c, l, s) = ctx.times(tag::ACCOUNT, i, ctx.counts.account);
    b.set(
        "LastActivityDate",
        opt(&mut r, 50, |_| Val::Date(l.div_euclid(DAY_MS))),
    );
    b.sys(ctx, &mut r, (c, l, s));
    b.done()
}

fn gen_contact(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::CONTACT, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("003", i as u64));
    if ctx.counts.account > 0 && r.chance(90) {
        b.set(
            "AccountId",
            id_val("001", r.below(ctx.counts.account as u64)),
        );
    }
    let sal = r.pick(&["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."]);
    b.set("Salutation", opt(&mut r, 50, |_| Val::s(sal)));
    let (first, last) = person(&mut r);
    let has_first = r.chance(92);
    if has_first {
        b.str("FirstName", first);
    }
    b.str("LastName", last);
    b.str(
        "Name",
        if has_first {
            format!("{first} {last}")
        } else {
            last.to_string()
        },
    );
    let title = r.pick(&["CEO", "CTO", "IT Manager", "Buyer", "Engineer", "Directeur"]);
    b.set("Title", opt(&mut r, 70, |_| Val::s(title)));
    let dept = r.pick(&["IT", "Finance", "Operations", "Support"]);
    b.set("Department", opt(&mut r, 50, |_| Val::s(dept)));
    let local = r.pick(ASCII_FIRST);
    b.set(
        "Email",
        opt(&mut r, 85, |_| Val::s(format!("{local}.{i}@example.org"))),
    );
    b.set(
        "Phone",
        opt(&mut r, 70, |r| {
            Val::s(format!("(415) 555-{:04}", r.below(10_000)))
        }),
    );
    b.set(
        "MobilePhone",
        opt(&mut r, 40, |r| {
            Val::s(format!("+44 7700 9{:05}", r.below(100_000)))
        }),
    );
    if i > 0 && r.chance(10) {
        b.set("ReportsToId", id_val("003", r.below(i as u64)));
    }
    let src = r.pick(&["Web", "Phone Inquiry", "Partner Referral", "Other"]);
    b.set("LeadSource", opt(&mut r, 60, |_| Val::s(src)));
    b.set(
        "Birthdate",
        opt(&mut r, 30, |r| Val::Date(-3650 + r.below(12_000) as i64)),
    );
    b.set("Description", opt(&mut r, 20, |r| Val::s(long_text(r, 3))));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    b.address(&mut r, "Mailing", 70);
    b.set("HasOptedOutOfEmail", Val::Bool(r.chance(10)));
    let t = ctx.times(tag::CONTACT, i, ctx.counts.contact);
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_lead(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::LEAD, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("00Q", i as u64));
    let sal = r.pick(&["Mr.", "Ms.", "Dr."]);
    b.set("Salutation", opt(&mut r, 40, |_| Val::s(sal)));
    let (first, last) = person(&mut r);
    b.str("FirstName", first)
        .str("LastName", last)
        .str("Name", format!("{first} {last}"))
        .str("Company", company(&mut r));
    b.set("Title", opt(&mut r, 50, |_| Val::s("Head of Procurement")));
    b.set(
        "Email",
        opt(&mut r, 80, |_| Val::s(format!("lead{i}@example.net"))),
    );
    b.set(
        "Phone",
        opt(&mut r, 60, |r| {
            Val::s(format!(
                "+33 1 23 45 {:02} {:02}",
                r.below(100),
                r.below(100)
            ))
        }),
    );
    let converted = r.chance(15);
    let status = if converted {
        "Closed - Converted"
    } else {
        r.pick(&[
            "Open - Not Contacted",
            "Working - Contacted",
            "Closed - Not Converted",
        ])
    };
    b.str("Status", status);
    let src = r.pick(&["Web", "Phone Inquiry", "Partner Referral", "Other"]);
    b.set("LeadSource", opt(&mut r, 70, |_| Val::s(src)));
    let rating = r.pick(&["Hot", "Warm", "Cold"]);
    b.set("Rating", opt(&mut r, 50, |_| Val::s(rating)));
    let rev = r.below(50_000_000) as f64;
    b.set("AnnualRevenue", opt(&mut r, 40, |_| Val::Num(rev)));
    let emp = r.below(5000) as i64;
    b.set("NumberOfEmployees", opt(&mut r, 40, |_| Val::Int(emp)));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    b.set("IsConverted", Val::Bool(converted));
    let t = ctx.times(tag::LEAD, i, ctx.counts.lead);
    if converted {
        b.set("ConvertedDate", Val::Date(t.1.div_euclid(DAY_MS)));
        if ctx.counts.account > 0 {
            b.set(
                "ConvertedAccountId",
                id_val("001", r.below(ctx.counts.account as u64)),
            );
        }
    }
    b.address(&mut r, "", 60);
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_opportunity(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::OPP, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("006", i as u64));
    if ctx.counts.account > 0 && r.chance(95) {
        b.set(
            "AccountId",
            id_val("001", r.below(ctx.counts.account as u64)),
        );
    }
    b.str(
        "Name",
        format!("{} – {} seats", r.pick(PRODUCTS), 5 + r.below(500)),
    );
    let stages = [
        ("Prospecting", 10.0),
        ("Qualification", 20.0),
        ("Proposal/Price Quote", 75.0),
        ("Negotiation/Review", 90.0),
        ("Closed Won", 100.0),
        ("Closed Lost", 0.0),
    ];
    let (stage, prob) = stages[r.below(6) as usize];
    b.str("StageName", stage);
    let amount = (r.below(10_000_000) as f64) / 100.0;
    b.set("Amount", opt(&mut r, 85, |_| Val::Num(amount)));
    b.set("Probability", Val::Num(prob));
    let t = ctx.times(tag::OPP, i, ctx.counts.opportunity);
    b.set(
        "CloseDate",
        Val::Date(t.0.div_euclid(DAY_MS) + r.below(120) as i64),
    );
    let ty = r.pick(&["New Customer", "Existing Customer - Upgrade"]);
    b.set("Type", opt(&mut r, 60, |_| Val::s(ty)));
    b.set(
        "NextStep",
        opt(&mut r, 30, |_| Val::s("Send revised quote")),
    );
    b.set("Description", opt(&mut r, 20, |r| Val::s(long_text(r, 2))));
    let closed = stage.starts_with("Closed");
    b.set("IsClosed", Val::Bool(closed));
    b.set("IsWon", Val::Bool(stage == "Closed Won"));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_user(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::USER, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("005", i as u64));
    let (first, last) = if i == 0 {
        ("Integration", "User")
    } else {
        person(&mut r)
    };
    let username = if i == 0 {
        ctx.admin_username.clone()
    } else {
        format!("user{i}@sluice-emulator.example")
    };
    b.str("Username", username.as_str())
        .str("FirstName", first)
        .str("LastName", last)
        .str("Name", format!("{first} {last}"))
        .str("Email", username.as_str())
        .str("Alias", format!("u{i}"));
    b.set("IsActive", Val::Bool(i == 0 || r.chance(90)));
    let ty = if i == 0 || r.chance(90) {
        "Standard"
    } else {
        r.pick(&["PowerPartner", "CspLitePortal", "AutomatedProcess"])
    };
    b.str("UserType", ty);
    b.set("Title", opt(&mut r, 60, |_| Val::s("Support Agent")));
    b.set(
        "Department",
        opt(&mut r, 60, |_| Val::s("Customer Success")),
    );
    if i > 1 && r.chance(70) {
        b.set("ManagerId", id_val("005", r.below(i as u64)));
    }
    let tz = r.pick(&["America/Los_Angeles", "Europe/Paris", "Asia/Tokyo"]);
    b.str("TimeZoneSidKey", tz);
    let lang = r.pick(&["en_US", "fr", "de", "ja"]);
    b.str("LanguageLocaleKey", lang);
    b.address(&mut r, "", 40);
    let t = ctx.times(tag::USER, i, ctx.counts.user);
    b.set(
        "LastLoginDate",
        opt(&mut r, 80, |_| Val::DateTime(t.2 - 3_600_000)),
    );
    // User has no IsDeleted; sys() skips it.
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_task(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::TASK, i);
    let mut b = RowB::new(def);
    b.set("Id", id_val("00T", i as u64));
    if ctx.counts.case > 0 && r.chance(60) {
        b.set("WhatId", id_val("500", r.below(ctx.counts.case as u64)));
    } else if ctx.counts.account > 0 && r.chance(70) {
        b.set("WhatId", id_val("001", r.below(ctx.counts.account as u64)));
    }
    let who = (ctx.counts.contact > 0 && r.chance(60))
        .then(|| ids::make("003", r.below(ctx.counts.contact as u64)));
    if let Some(who) = &who {
        b.set("WhoId", Val::s(who.as_str()));
    }
    let subj = r.pick(&[
        "Call",
        "Email",
        "Send Quote",
        "Follow up",
        "Rappeler le client",
    ]);
    b.str("Subject", subj);
    let status = r.pick(&["Not Started", "In Progress", "Completed"]);
    b.str("Status", status);
    b.str("Priority", r.pick(&["High", "Normal", "Low"]));
    let t = ctx.times(tag::TASK, i, ctx.counts.task);
    b.set(
        "ActivityDate",
        opt(&mut r, 70, |r| {
            Val::Date(t.0.div_euclid(DAY_MS) + r.below(14) as i64)
        }),
    );
    b.set("Description", opt(&mut r, 30, |r| Val::s(long_text(r, 2))));
    b.set("IsClosed", Val::Bool(status == "Completed"));
    b.set("IsArchived", Val::Bool(false));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    b.sys(ctx, &mut r, t);
    // Drawn last, so the other fields keep the values earlier datasets had.
    if let Some(who) = who {
        b.set("TaskWhoIds", task_who_ids(ctx, &mut r, who));
    }
    b.done()
}

/// A task's related people: its `WhoId` first, and for about one task in three up to three
/// more Contacts (Shared Activities allows up to 50 Contacts, or one Lead).
fn task_who_ids(ctx: &GenCtx, r: &mut Rng, who: String) -> Val {
    let mut ids = vec![who];
    if r.chance(35) {
        for _ in 0..1 + r.below(3) {
            let id = ids::make("003", r.below(ctx.counts.contact as u64));
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    Val::s(ids.join(&crate::soql::JUNCTION_JOIN.to_string()))
}

fn gen_case(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::CASE, i);
    let mut b = RowB::new(def);
    let t = ctx.times(tag::CASE, i, ctx.counts.case);
    b.set("Id", id_val("500", i as u64))
        .str("CaseNumber", format!("{:08}", i + 1));
    let subject = format!("{} {}", r.pick(PRODUCTS), r.pick(PROBLEMS));
    b.set("Subject", opt(&mut r, 95, |_| Val::s(subject)));
    let desc = if r.chance(3) {
        // Long text: a few rows carry several kilobytes.
        Val::s(long_text(&mut r, 10).repeat(6))
    } else {
        opt(&mut r, 80, |r| Val::s(long_text(r, 4)))
    };
    b.set("Description", desc);
    let status = schema::CASE_STATUS[r.below(4) as usize];
    b.str("Status", status);
    b.str("Priority", r.pick(&["High", "Medium", "Low"]));
    let origin = r.pick(&["Phone", "Email", "Web"]);
    b.str("Origin", origin);
    let ty = r.pick(&[
        "Mechanical",
        "Electrical",
        "Electronic",
        "Structural",
        "Other",
    ]);
    b.set("Type", opt(&mut r, 70, |_| Val::s(ty)));
    let reason = r.pick(&["Installation", "Performance", "Breakdown", "Feedback"]);
    b.set("Reason", opt(&mut r, 60, |_| Val::s(reason)));
    let closed = status == "Closed";
    b.set("IsClosed", Val::Bool(closed));
    b.set(
        "ClosedDate",
        if closed {
            Val::DateTime(t.1)
        } else {
            Val::Null
        },
    );
    b.set("IsEscalated", Val::Bool(status == "Escalated"));
    let owner = ctx.user_id(&mut r);
    b.set("OwnerId", owner);
    if ctx.counts.account > 0 && r.chance(85) {
        b.set(
            "AccountId",
            id_val("001", r.below(ctx.counts.account as u64)),
        );
    }
    if ctx.counts.contact > 0 && r.chance(70) {
        b.set(
            "ContactId",
            id_val("003", r.below(ctx.counts.contact as u64)),
        );
    }
    if i > 0 && r.chance(5) {
        b.set("ParentId", id_val("500", r.below(i as u64)));
    }
    if origin == "Web" {
        let (first, last) = person(&mut r);
        b.str("SuppliedName", format!("{first} {last}"))
            .str("SuppliedEmail", format!("web{i}@example.com"));
        b.set(
            "SuppliedPhone",
            opt(&mut r, 50, |r| {
                Val::s(format!("555-{:04}", r.below(10_000)))
            }),
        );
    }
    b.sys(ctx, &mut r, t);
    b.done()
}

/// Parent case of child row `i` of `n`: children are spread evenly so their parents'
/// timestamps grow with theirs.
fn parent_case(ctx: &GenCtx, i: u32, n: u32) -> Option<u32> {
    let cases = ctx.counts.case as u64;
    (cases > 0).then(|| ((i as u64) * cases / (n.max(1) as u64)) as u32)
}

/// Child timestamps never predate the parent case's creation.
fn child_times(ctx: &GenCtx, tag: u64, i: u32, n: u32, parent: Option<u32>) -> (i64, i64, i64) {
    let (c, l, s) = ctx.times(tag, i, n);
    let floor = parent.map_or(i64::MIN, |p| ctx.times(tag::CASE, p, ctx.counts.case).0);
    let c = c.max(floor).min(l);
    (c, l, s)
}

fn gen_comment(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::COMMENT, i);
    let mut b = RowB::new(def);
    let parent = parent_case(ctx, i, ctx.counts.comment);
    b.set("Id", id_val("00a", i as u64));
    b.set(
        "ParentId",
        parent.map_or(Val::Null, |p| id_val("500", p as u64)),
    );
    b.str("CommentBody", long_text(&mut r, 3));
    b.set("IsPublished", Val::Bool(r.chance(60)));
    let t = child_times(ctx, tag::COMMENT, i, ctx.counts.comment, parent);
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_email(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::EMAIL, i);
    let mut b = RowB::new(def);
    let parent = parent_case(ctx, i, ctx.counts.email);
    let t = child_times(ctx, tag::EMAIL, i, ctx.counts.email, parent);
    b.set("Id", id_val("02s", i as u64));
    b.set(
        "ParentId",
        parent.map_or(Val::Null, |p| id_val("500", p as u64)),
    );
    let subject = format!(
        "RE: {} {} [ ref:_00D5e{i}:ref ]",
        r.pick(PRODUCTS),
        r.pick(PROBLEMS)
    );
    b.str("Subject", subject);
    let text = long_text(&mut r, 6);
    let html = format!(
        "<html><body><p>{}</p><p><b>Best regards</b>,<br/>Support</p></body></html>",
        text.replace('&', "&amp;").replace('<', "&lt;")
    );
    b.str("TextBody", text);
    b.set("HtmlBody", opt(&mut r, 80, |_| Val::s(html)));
    let incoming = r.chance(55);
    let local = r.pick(ASCII_FIRST);
    b.str("FromAddress", format!("{local}@example.org"));
    let (first, last) = person(&mut r);
    b.str("FromName", format!("{first} {last}"));
    b.str("ToAddress", "support@sluice-emulator.example");
    b.set(
        "CcAddress",
        opt(&mut r, 20, |_| {
            Val::s("manager@example.org; audit@example.org")
        }),
    );
    b.set("Incoming", Val::Bool(incoming));
    b.str(
        "Status",
        if incoming {
            r.pick(&["0", "1", "2"])
        } else {
            "3"
        },
    );
    b.set("MessageDate", Val::DateTime(t.0));
    b.set("HasAttachment", Val::Bool(r.chance(15)));
    b.sys(ctx, &mut r, t);
    b.done()
}

fn gen_history(ctx: &GenCtx, def: &ObjectDef, i: u32) -> Box<[Val]> {
    let mut r = Rng::for_row(ctx.seed, tag::HISTORY, i);
    let mut b = RowB::new(def);
    let parent = parent_case(ctx, i, ctx.counts.history);
    b.set("Id", id_val("017", i as u64));
    b.set(
        "CaseId",
        parent.map_or(Val::Null, |p| id_val("500", p as u64)),
    );
    let field = r.pick(&["created", "Status", "Priority", "Owner"]);
    b.str("Field", field);
    match field {
        "created" => {
            b.set("DataType", Val::Null);
        }
        "Owner" => {
            b.str("DataType", "EntityId");
            b.set("OldValue", ctx.user_id(&mut r));
            b.set("NewValue", ctx.user_id(&mut r));
        }
        // anyType values are typed per row: REST answers these as JSON booleans.
        "Priority" if i.is_multiple_of(5) => {
            b.str("Field", "IsEscalated");
            b.str("DataType", "Boolean");
            let old = i.is_multiple_of(2);
            b.set("OldValue", Val::Bool(old));
            b.set("NewValue", Val::Bool(!old));
        }
        _ => {
            b.str("DataType", "DynamicEnum");
            let vals = if field == "Status" {
                schema::CASE_STATUS
            } else {
                &["High", "Medium", "Low"]
            };
            b.str("OldValue", r.pick(vals));
            b.str("NewValue", r.pick(vals));
        }
    }
    // History rows are append-only: only CreatedDate, which is their cursor.
    let (_, _, s) = child_times(ctx, tag::HISTORY, i, ctx.counts.history, parent);
    b.sys(ctx, &mut r, (s, s, s));
    b.done()
}

/// Knowledge versions are few, and their shape (versions × languages × states) is not a
/// simple function of a row number, so they are materialised at startup.
fn knowledge_rows(ctx: &GenCtx, def: &ObjectDef) -> Vec<Box<[Val]>> {
    let mut rows = Vec::new();
    let n = ctx.counts.articles;
    for a in 0..n {
        let mut r = Rng::for_row(ctx.seed, tag::KNOWLEDGE, a);
        let mut langs = vec!["en_US"];
        for (lang, pct) in [("fr", 40), ("de", 20), ("ja", 10)] {
            if r.chance(pct) {
                langs.push(lang);
            }
        }
        let versions = 1 + r.below(3) as i64;
        let has_draft = r.chance(15);
        let all_archived = r.chance(5);
        let topic = format!("{} {}", r.pick(PRODUCTS), r.pick(PROBLEMS));
        for lang in &langs {
            let total = versions + i64::from(has_draft);
            for v in 1..=total {
                let status = if v == total && has_draft {
                    "Draft"
                } else if v == versions && !all_archived {
                    "Online"
                } else {
                    "Archived"
                };
                let latest = status != "Archived" || (all_archived && v == versions);
                let k = rows.len() as u32;
                let (c, l, s) = ctx.times(tag::KNOWLEDGE, a * 8 + v as u32, n * 8);
                let mut b = RowB::new(def);
                b.set("Id", id_val("ka0", k as u64))
                    .set("KnowledgeArticleId", id_val("kA0", a as u64))
                    .str("ArticleNumber", format!("{:09}", 1000 + a))
                    .str("Title", format!("How to fix: {topic} ({lang})"))
                    .str("UrlName", format!("how-to-fix-{a}"))
                    .set("Summary", opt(&mut r, 70, |r| Val::s(long_text(r, 2))))
                    .str("PublishStatus", status)
                    .str("Language", *lang)
                    .set("IsLatestVersion", Val::Bool(latest))
                    .set("VersionNumber", Val::Int(v))
                    .set("IsMasterLanguage", Val::Bool(*lang == "en_US"))
                    .set("IsVisibleInApp", Val::Bool(true))
                    .set("IsVisibleInPkb", Val::Bool(r.chance(70)))
                    .set("IsVisibleInCsp", Val::Bool(r.chance(50)))
                    .set("IsVisibleInPrm", Val::Bool(r.chance(20)))
                    .str("ValidationStatus", "Validated");
                let published = status != "Draft";
                let pubdate = |d: i64| {
                    if published {
                        Val::DateTime(d)
                    } else {
                        Val::Null
                    }
                };
                b.set("FirstPublishedDate", pubdate(c))
                    .set("LastPublishedDate", pubdate(l))
                    .set(
                        "ArchivedDate",
                        if status == "Archived" {
                            Val::DateTime(s)
                        } else {
                            Val::Null
                        },
                    );
                let owner = ctx.user_id(&mut r);
                b.set("OwnerId", owner);
                let body = format!(
                    "<h2>{topic}</h2><p>{}</p><ul><li>Étape 1</li><li>ステップ 2</li></ul><p><a href=\"https://help.example.com/{a}\">More</a></p>",
                    long_text(&mut r, 5).replace('<', "&lt;")
                );
                b.str("Body__c", body);
                b.set(
                    "Answer__c",
                    opt(&mut r, 50, |r| {
                        Val::s(format!("<p>{}</p>", long_text(r, 2)))
                    }),
                );
                b.sys(ctx, &mut r, (c, l, s));
                rows.push(b.done());
            }
        }
    }
    rows
}

type RowGen = fn(&GenCtx, &ObjectDef, u32) -> Box<[Val]>;

fn lazy_table(ctx: &Arc<GenCtx>, def: ObjectDef, n: u32, f: RowGen) -> Table {
    let def_for_gen = Arc::new(def.clone());
    let c = ctx.clone();
    let generator: GenFn = Arc::new(move |i| f(&c, &def_for_gen, i));
    let c = ctx.clone();
    // Must agree with what the row generators write into the cursor field.
    let cursor: CursorFn = match def.name {
        "CaseComment" => Arc::new(move |i| c.times(tag::COMMENT, i, c.counts.comment).2),
        "EmailMessage" => Arc::new(move |i| c.times(tag::EMAIL, i, c.counts.email).2),
        "CaseHistory" => Arc::new(move |i| c.times(tag::HISTORY, i, c.counts.history).2),
        name => {
            let (t, count) = match name {
                "Account" => (tag::ACCOUNT, c.counts.account),
                "Case" => (tag::CASE, c.counts.case),
                "Contact" => (tag::CONTACT, c.counts.contact),
                "Lead" => (tag::LEAD, c.counts.lead),
                "Opportunity" => (tag::OPP, c.counts.opportunity),
                "Task" => (tag::TASK, c.counts.task),
                _ => (tag::USER, c.counts.user),
            };
            Arc::new(move |i| c.times(t, i, count).2)
        }
    };
    Table::new(def, n, Some(generator)).with_lazy_cursor(cursor)
}

/// Builds the whole store for a dataset.
pub fn build(ctx: GenCtx) -> Store {
    let ctx = Arc::new(ctx);
    let c = ctx.counts;
    let mut tables = Vec::new();
    for def in schema::all_objects() {
        let t = match def.name {
            "Account" => lazy_table(&ctx, def, c.account, gen_account),
            "Case" => lazy_table(&ctx, def, c.case, gen_case),
            "CaseComment" => lazy_table(&ctx, def, c.comment, gen_comment),
            "CaseHistory" => lazy_table(&ctx, def, c.history, gen_history),
            "Contact" => lazy_table(&ctx, def, c.contact, gen_contact),
            "EmailMessage" => lazy_table(&ctx, def, c.email, gen_email),
            "Lead" => lazy_table(&ctx, def, c.lead, gen_lead),
            "Opportunity" => lazy_table(&ctx, def, c.opportunity, gen_opportunity),
            "Task" => lazy_table(&ctx, def, c.task, gen_task),
            "User" => lazy_table(&ctx, def, c.user, gen_user),
            "Knowledge__kav" => {
                let rows = knowledge_rows(&ctx, &def);
                let mut t = Table::new(def, 0, None);
                for values in rows {
                    t.push(RowState {
                        values,
                        visible_at: i64::MIN,
                        purged: false,
                        deleted_at: None,
                        previous: None,
                    });
                }
                t
            }
            // One row, the session user's permissions, filled from the settings.
            "UserPermissionAccess" => crate::access::permission_table(def),
            other => unreachable!("no generator for {other}"),
        };
        tables.push(t);
    }
    let mut store = Store::new(tables);
    seed_recycle_bin(&ctx, &mut store);
    store
}

/// Puts about one row in 150 of each deletable object in the recycle bin, so queryAll,
/// `IsDeleted` and `/deleted` have something to find from the start.
fn seed_recycle_bin(ctx: &GenCtx, store: &mut Store) {
    for name in [
        "Account",
        "Case",
        "CaseComment",
        "Contact",
        "EmailMessage",
        "Lead",
        "Opportunity",
        "Task",
    ] {
        let Some(table) = store.table_mut(name) else {
            continue;
        };
        let sys = table.sys;
        let (Some(del_ix), Some(ms_ix)) = (sys.is_deleted, sys.modstamp) else {
            continue;
        };
        for n in 0..table.len() as u32 {
            let mut r = Rng::for_row(ctx.seed, 77, n ^ name.len() as u32);
            if r.below(150) != 7 {
                continue;
            }
            let Some(state) = table.state_mut(n) else {
                continue;
            };
            let ms = state.values[ms_ix].as_datetime().unwrap_or(ctx.anchor);
            let deleted = (ms + r.below(6 * 3_600_000) as i64).min(ctx.anchor - 1000);
            let deleted = deleted.max(ms);
            state.values[del_ix] = Val::Bool(true);
            state.values[ms_ix] = Val::DateTime(deleted - deleted.rem_euclid(1000));
            state.deleted_at = Some(deleted - deleted.rem_euclid(1000));
        }
    }
}
