//! The report as JUnit XML: one `testsuite` per component, one `testcase` per check, with
//! `failure` and `skipped` elements as CI systems read them.

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use crate::report::{Outcome, Report};

/// The report as a JUnit XML document.
pub fn to_junit(report: &Report) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut writer, report).expect("writing XML into memory cannot fail");
    String::from_utf8(writer.into_inner()).expect("quick-xml writes UTF-8")
}

fn write(writer: &mut Writer<Vec<u8>>, report: &Report) -> std::io::Result<()> {
    let (_, failed, skipped) = report.counts();
    let tests = report.results.len().to_string();
    let (failed, skipped) = (failed.to_string(), skipped.to_string());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let suites = BytesStart::new("testsuites").with_attributes([
        ("name", "sluice conformance"),
        ("tests", tests.as_str()),
        ("failures", failed.as_str()),
        ("skipped", skipped.as_str()),
    ]);
    writer.write_event(Event::Start(suites))?;
    let suite = BytesStart::new("testsuite").with_attributes([
        ("name", report.connector.as_str()),
        ("tests", tests.as_str()),
        ("failures", failed.as_str()),
        ("errors", "0"),
        ("skipped", skipped.as_str()),
    ]);
    writer.write_event(Event::Start(suite))?;
    for result in &report.results {
        let case = BytesStart::new("testcase").with_attributes([
            ("name", result.check.name()),
            ("classname", "sluice.conformance"),
        ]);
        let child = match &result.outcome {
            Outcome::Pass(message) => {
                writer.write_event(Event::Start(case))?;
                let out = BytesStart::new("system-out");
                writer.write_event(Event::Start(out))?;
                writer.write_event(Event::Text(BytesText::new(message)))?;
                writer.write_event(Event::End(BytesEnd::new("system-out")))?;
                writer.write_event(Event::End(BytesEnd::new("testcase")))?;
                continue;
            }
            Outcome::Fail(message) => BytesStart::new("failure")
                .with_attributes([("message", message.as_str()), ("type", "conformance")]),
            Outcome::Skip(message) => {
                BytesStart::new("skipped").with_attributes([("message", message.as_str())])
            }
        };
        writer.write_event(Event::Start(case))?;
        writer.write_event(Event::Empty(child))?;
        writer.write_event(Event::End(BytesEnd::new("testcase")))?;
    }
    writer.write_event(Event::End(BytesEnd::new("testsuite")))?;
    writer.write_event(Event::End(BytesEnd::new("testsuites")))?;
    Ok(())
}
