//! Time as a dependency.
//!
//! * [`Clock`]: where "now" comes from. Services take one; [`SystemClock`] in production,
//!   [`ManualClock`] in tests and scenario replays, where years pass in seconds.
//! * [`WorkingCalendar`]: England's working days (Monday to Friday, not a bank holiday of
//!   England and Wales) and working hours (09:00 to 17:00 in Europe/London), for deadlines such
//!   as "before the start of the next working day" or "within two working days".
//!
//! Pure: no I/O; the bank holidays are data (`calendar.rs`).

mod calendar;
mod clock;

pub use calendar::{WorkingCalendar, bank_holidays_published, computed_bank_holidays};
pub use clock::{Clock, ManualClock, SystemClock};
