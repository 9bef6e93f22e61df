//! A task written in JavaScript through a real cluster: `stock-day-js` (componentize-js) is
//! signed, published and run by two unchanged volunteers, each unit by both, which must agree
//! byte for byte and fuel for fuel (the Python crawler's test, `python_task`, with this module).

use std::time::Duration;

use musketeer_task_artifacts::STOCK_DAY_JS;

use crate::python_task::two_volunteers_agree_on_a_crawler;

/// Each volunteer compiles the 12 MB module once (about a minute on a loaded 2-core machine,
/// both at the same time), so this waits longer than `support::DEADLINE`.
const JS_DEADLINE: Duration = Duration::from_secs(600);

#[test]
fn two_volunteers_agree_on_the_js_crawler() {
    two_volunteers_agree_on_a_crawler(STOCK_DAY_JS, "stock-day-js", JS_DEADLINE);
}
