//! Counter streams (ADR-49): `Nats-Incr` values and the running total, as nats-server
//! computes them with Go's `big.Int` — arbitrary precision, base 10.
//!
//! The total is a canonical signed decimal string (no `+`, no leading zeros, `0` for
//! zero), the form nats-server stores in `{"val":"…"}` and answers in the PubAck.

/// A canonical signed decimal of arbitrary size.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    /// Most significant digit first, as values 0..=9; empty = zero.
    digits: Vec<u8>,
}

impl Decimal {
    /// Go's `big.Int.SetString(s, 10)`: an optional sign, then ASCII digits only.
    fn parse(value: &str) -> Option<Decimal> {
        let (negative, body) = match value.as_bytes().first()? {
            b'-' => (true, &value[1..]),
            b'+' => (false, &value[1..]),
            _ => (false, value),
        };
        if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: Vec<u8> = body
            .bytes()
            .skip_while(|b| *b == b'0')
            .map(|b| b - b'0')
            .collect();
        Some(Decimal {
            negative: negative && !digits.is_empty(),
            digits,
        })
    }

    fn render(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_owned();
        }
        let mut out = String::with_capacity(self.digits.len() + 1);
        if self.negative {
            out.push('-');
        }
        out.extend(self.digits.iter().map(|d| char::from(b'0' + d)));
        out
    }

    fn add(&self, other: &Decimal) -> Decimal {
        let (negative, digits) = if self.negative == other.negative {
            (self.negative, add_magnitudes(&self.digits, &other.digits))
        } else if compare(&self.digits, &other.digits).is_ge() {
            (self.negative, sub_magnitudes(&self.digits, &other.digits))
        } else {
            (other.negative, sub_magnitudes(&other.digits, &self.digits))
        };
        let digits: Vec<u8> = digits.into_iter().skip_while(|d| *d == 0).collect();
        Decimal {
            negative: negative && !digits.is_empty(),
            digits,
        }
    }
}

fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn add_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let (mut ia, mut ib, mut carry) = (a.iter().rev(), b.iter().rev(), 0u8);
    loop {
        let (x, y) = (ia.next(), ib.next());
        if x.is_none() && y.is_none() {
            break;
        }
        let sum = x.copied().unwrap_or(0) + y.copied().unwrap_or(0) + carry;
        out.push(sum % 10);
        carry = sum / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out.reverse();
    out
}

/// `a - b` for magnitudes with `a >= b`.
fn sub_magnitudes(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let (mut ib, mut borrow) = (b.iter().rev(), 0u8);
    for x in a.iter().rev() {
        let y = ib.next().copied().unwrap_or(0) + borrow;
        if *x >= y {
            out.push(x - y);
            borrow = 0;
        } else {
            out.push(x + 10 - y);
            borrow = 1;
        }
    }
    out.reverse();
    out
}

/// A `Nats-Incr` value in canonical form, or `None` when nats-server refuses it as
/// `message counter increment is invalid` (10171). Surrounding whitespace is the
/// header parser's and is ignored.
pub fn parse_incr(value: &str) -> Option<String> {
    Decimal::parse(value.trim()).map(|d| d.render())
}

/// `total + incr`, both canonical (an unparsable `total` counts as 0, as a missing
/// previous value does); `None` when `incr` is not a valid increment.
pub fn add(total: Option<&str>, incr: &str) -> Option<String> {
    let incr = Decimal::parse(incr)?;
    let base = total.and_then(Decimal::parse).unwrap_or(Decimal {
        negative: false,
        digits: Vec::new(),
    });
    Some(base.add(&incr).render())
}

/// The body nats-server stores for a counter message: `{"val":"<total>"}`.
pub fn value_body(total: &str) -> String {
    format!("{{\"val\":\"{total}\"}}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_read_as_go_big_int() {
        assert_eq!(parse_incr("1").as_deref(), Some("1"));
        assert_eq!(parse_incr("+5").as_deref(), Some("5"));
        assert_eq!(parse_incr("-2").as_deref(), Some("-2"));
        assert_eq!(parse_incr(" 3").as_deref(), Some("3"));
        assert_eq!(parse_incr("007").as_deref(), Some("7"));
        assert_eq!(parse_incr("-0").as_deref(), Some("0"));
        for bad in ["", "x", "1.5", "1_000", "--1", "+", "0x10", "1e3"] {
            assert_eq!(parse_incr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn totals_add_with_arbitrary_precision() {
        assert_eq!(add(None, "1").as_deref(), Some("1"));
        assert_eq!(add(Some("1"), "5").as_deref(), Some("6"));
        assert_eq!(add(Some("6"), "-2").as_deref(), Some("4"));
        assert_eq!(add(Some("4"), "-10").as_deref(), Some("-6"));
        assert_eq!(add(Some("-6"), "6").as_deref(), Some("0"));
        assert_eq!(add(Some("-6"), "-6").as_deref(), Some("-12"));
        assert_eq!(add(Some("999"), "1").as_deref(), Some("1000"));
        assert_eq!(add(Some("1000"), "-1").as_deref(), Some("999"));
        // nats-server's answer for these in a probe of 2.15.1.
        assert_eq!(
            add(Some("5"), "99999999999999999999999999").as_deref(),
            Some("100000000000000000000000004")
        );
        assert_eq!(add(Some("broken"), "2").as_deref(), Some("2"));
        assert_eq!(add(Some("1"), "x"), None);
        assert_eq!(value_body("-3"), r#"{"val":"-3"}"#);
    }
}
