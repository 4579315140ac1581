//! The diagram's palette and the WCAG contrast formula that keeps it legible.
//!
//! The diagram paints its own light background, so it reads the same on the
//! Explorer's dark page, in a browser tab and in a file viewer. Every ink
//! below has a contrast of at least 4.5:1 (WCAG AA for text) against the
//! background and against every band drawn behind text (the unit tests parse
//! a real diagram and check each colour it uses).

/// The background rectangle filling the whole diagram.
pub const BACKGROUND: &str = "#ffffff";
/// Band behind the violating step and the violation banner.
pub const VIOLATION_BAND: &str = "#fdecea";
/// Band behind the legend.
pub const LEGEND_BAND: &str = "#f2f5f8";

/// Body text.
pub const INK: &str = "#1a1a1a";
/// Secondary text: legend, step numbers, lifelines.
pub const MUTED: &str = "#505050";
/// Delivered messages.
pub const DELIVERED: &str = "#0d47a1";
/// Delivered duplicate copies.
pub const DUPLICATE: &str = "#6a1b9a";
/// Dropped messages, crashes, violations, partitions.
pub const RED: &str = "#b71c1c";
/// Messages lost to a partition at the moment they were sent.
pub const LOST: &str = "#8a4500";
/// Leaders and heals.
pub const GREEN: &str = "#1b5e20";
/// Candidates.
pub const CANDIDATE: &str = "#7a4f00";
/// Local events (timeouts, client requests, persists).
pub const LOCAL: &str = "#00574b";

/// Every ink, for the tests.
pub const INKS: &[&str] = &[
    INK, MUTED, DELIVERED, DUPLICATE, RED, LOST, GREEN, CANDIDATE, LOCAL,
];
/// Every fill that text is drawn on.
pub const GROUNDS: &[&str] = &[BACKGROUND, VIOLATION_BAND, LEGEND_BAND];

/// `#rrggbb` (or `#rgb`, `white`, `black`) as 8-bit channels.
pub fn parse_hex(color: &str) -> Option<[u8; 3]> {
    let c = match color.trim() {
        "white" => "#ffffff",
        "black" => "#000000",
        c => c,
    };
    let hex = c.strip_prefix('#')?;
    let digits: Vec<u8> = match hex.len() {
        6 => (0..3)
            .map(|k| u8::from_str_radix(&hex[2 * k..2 * k + 2], 16).ok())
            .collect::<Option<_>>()?,
        3 => hex
            .chars()
            .map(|ch| ch.to_digit(16).map(|d| (d * 17) as u8))
            .collect::<Option<_>>()?,
        _ => return None,
    };
    Some([digits[0], digits[1], digits[2]])
}

/// WCAG 2 relative luminance of an sRGB colour.
pub fn relative_luminance(rgb: [u8; 3]) -> f64 {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.03928 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2])
}

/// WCAG 2 contrast ratio (1 to 21) of two colours.
pub fn contrast(a: [u8; 3], b: [u8; 3]) -> f64 {
    let (la, lb) = (relative_luminance(a), relative_luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_gives_the_known_ratios() {
        let white = parse_hex("#fff").unwrap();
        let black = parse_hex("black").unwrap();
        assert!((contrast(white, black) - 21.0).abs() < 1e-9);
        // #767676 is the well-known lightest grey at 4.5:1 on white.
        let grey = parse_hex("#767676").unwrap();
        assert!((contrast(white, grey) - 4.54).abs() < 0.01);
        assert_eq!(parse_hex("#12345"), None);
    }

    #[test]
    fn every_ink_is_legible_on_every_ground() {
        for ink in INKS {
            for ground in GROUNDS {
                let c = contrast(parse_hex(ink).unwrap(), parse_hex(ground).unwrap());
                assert!(c >= 4.5, "{ink} on {ground}: {c:.2}:1");
            }
        }
    }
}
