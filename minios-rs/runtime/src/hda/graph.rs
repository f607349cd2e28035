//! A codec's widget graph as read from it, and the search for an output path (an audio
//! output converter reached from an output-capable pin complex) and an input path (an
//! input-capable pin complex reached from an audio input converter), each through at most
//! [`MAX_DEPTH`] widgets (mixers, selectors). Pure data, so the search is tested on the host.

use alloc::vec::Vec;

/// Widgets a path may have, pin and converter included.
pub const MAX_DEPTH: usize = 6;

/// `AUDIO_WIDGET_CAP` bits 23:20.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WidgetType {
    /// Audio output converter (a DAC).
    Output,
    /// Audio input converter (an ADC).
    Input,
    /// Mixer.
    Mixer,
    /// Selector.
    Selector,
    /// Pin complex.
    Pin,
    /// Anything else (power, volume knob, beep, vendor).
    Other,
}

impl WidgetType {
    /// The type in a widget's capabilities.
    pub fn of(caps: u32) -> Self {
        match (caps >> 20) & 0xf {
            0 => Self::Output,
            1 => Self::Input,
            2 => Self::Mixer,
            3 => Self::Selector,
            4 => Self::Pin,
            _ => Self::Other,
        }
    }
}

/// What the driver read of one widget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widget {
    /// Node id.
    pub nid: u16,
    /// Its type.
    pub kind: WidgetType,
    /// `AUDIO_WIDGET_CAP`.
    pub caps: u32,
    /// `PIN_CAP` (pins only).
    pub pin_caps: u32,
    /// The configuration default (pins only).
    pub config: u32,
    /// Its connection list (the widgets it takes input from), in index order.
    pub conns: Vec<u16>,
}

/// `PIN_CAP`: output capable.
pub const PIN_CAP_OUTPUT: u32 = 1 << 4;
/// `PIN_CAP`: input capable.
pub const PIN_CAP_INPUT: u32 = 1 << 5;

/// One widget on a path, and the connection index that leads on toward the converter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hop {
    /// Node id.
    pub nid: u16,
    /// Index into its connection list of the next hop (`None` for the converter).
    pub index: Option<u8>,
}

/// A preference rank of an output pin by its configuration default (lower is better):
/// line out, speaker, headphone, other outputs; pins marked "no physical connection" last.
fn pin_rank(config: u32) -> u8 {
    let unconnected = (config >> 30) == 1;
    let device = (config >> 20) & 0xf;
    let base = match device {
        0 => 0, // line out
        1 => 1, // speaker
        2 => 2, // headphone out
        _ => 3,
    };
    if unconnected {
        base + 4
    } else {
        base
    }
}

/// The best output path: pins ordered by [`pin_rank`] then node id, for each the shortest
/// path (breadth-first, at most [`MAX_DEPTH`] widgets, no widget twice) to an output
/// converter. Hops run from the pin to the converter.
pub fn output_path(widgets: &[Widget]) -> Option<Vec<Hop>> {
    let mut pins: Vec<&Widget> = widgets
        .iter()
        .filter(|w| w.kind == WidgetType::Pin && w.pin_caps & PIN_CAP_OUTPUT != 0)
        .collect();
    pins.sort_by_key(|w| (pin_rank(w.config), w.nid));
    pins.into_iter()
        .find_map(|pin| path_from(widgets, pin, |w| w.kind == WidgetType::Output))
}

/// The first input path: input converters in node order, for each the shortest path
/// (as for [`output_path`]) to an input-capable pin that is physically connected. Hops
/// run from the converter to the pin.
pub fn input_path(widgets: &[Widget]) -> Option<Vec<Hop>> {
    widgets
        .iter()
        .filter(|w| w.kind == WidgetType::Input)
        .find_map(|adc| {
            path_from(widgets, adc, |w| {
                w.kind == WidgetType::Pin
                    && w.pin_caps & PIN_CAP_INPUT != 0
                    && (w.config >> 30) != 1
            })
        })
}

fn find(widgets: &[Widget], nid: u16) -> Option<&Widget> {
    widgets.iter().find(|w| w.nid == nid)
}

fn path_from(
    widgets: &[Widget],
    pin: &Widget,
    target: impl Fn(&Widget) -> bool,
) -> Option<Vec<Hop>> {
    // Breadth-first over paths (bounded: depth and widget count), each a list of node ids
    // with the connection index taken out of each.
    let mut frontier: Vec<Vec<(u16, u8)>> = alloc::vec![Vec::new()];
    let mut ends: Vec<u16> = alloc::vec![pin.nid];
    for _depth in 1..MAX_DEPTH {
        let mut next_paths = Vec::new();
        let mut next_ends = Vec::new();
        for (path, &end) in frontier.iter().zip(&ends) {
            let Some(w) = find(widgets, end) else {
                continue;
            };
            for (i, &c) in w.conns.iter().enumerate().take(usize::from(u8::MAX)) {
                if c == pin.nid || path.iter().any(|&(n, _)| n == c) {
                    continue;
                }
                let Some(cw) = find(widgets, c) else { continue };
                let mut p = path.clone();
                p.push((end, i as u8));
                if target(cw) {
                    let mut hops: Vec<Hop> = p
                        .into_iter()
                        .map(|(nid, index)| Hop {
                            nid,
                            index: Some(index),
                        })
                        .collect();
                    hops.push(Hop {
                        nid: c,
                        index: None,
                    });
                    return Some(hops);
                }
                if matches!(cw.kind, WidgetType::Mixer | WidgetType::Selector) {
                    next_paths.push(p);
                    next_ends.push(c);
                }
            }
        }
        if next_paths.is_empty() || next_paths.len() > 4096 {
            return None;
        }
        frontier = next_paths;
        ends = next_ends;
    }
    None
}

/// Expands a connection list read from the codec: `entries` raw entries of `long`
/// (16-bit) or short (8-bit) form, a range flag (bit 15 / bit 7) meaning "every node from
/// the previous entry up to this one". At most `max` nodes; a range that runs backwards or
/// comes first is ignored.
pub fn expand_connections(entries: &[u16], long: bool, max: usize) -> Vec<u16> {
    let (range_bit, mask) = if long { (0x8000, 0x7fff) } else { (0x80, 0x7f) };
    let mut out: Vec<u16> = Vec::new();
    for &e in entries {
        let nid = e & mask;
        if e & range_bit != 0 {
            if let Some(&prev) = out.last() {
                if prev < nid {
                    for n in prev + 1..=nid {
                        if out.len() >= max {
                            return out;
                        }
                        out.push(n);
                    }
                }
            }
            continue;
        }
        if out.len() >= max {
            break;
        }
        out.push(nid);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn w(nid: u16, kind: u32, conns: &[u16]) -> Widget {
        Widget {
            nid,
            kind: WidgetType::of(kind << 20),
            caps: kind << 20,
            pin_caps: if kind == 4 { PIN_CAP_OUTPUT } else { 0 },
            config: 0,
            conns: conns.to_vec(),
        }
    }

    #[test]
    fn direct_pin_to_dac() {
        // QEMU's hda-duplex: DAC 2, pin 3 <- 2; ADC 4, pin 5.
        let g = vec![
            w(2, 0, &[]),
            w(3, 4, &[2]),
            w(4, 1, &[5]),
            w(5, 1 << 0, &[]),
        ];
        assert_eq!(
            output_path(&g).unwrap(),
            vec![
                Hop {
                    nid: 3,
                    index: Some(0)
                },
                Hop {
                    nid: 2,
                    index: None
                }
            ]
        );
    }

    #[test]
    fn through_a_selector_and_a_mixer_preferring_line_out() {
        let mut hp = w(0x21, 4, &[0x0c]);
        hp.config = 2 << 20;
        let mut unconnected = w(0x14, 4, &[0x02]);
        unconnected.config = 1 << 30;
        let g = vec![
            w(0x02, 0, &[]),
            w(0x03, 0, &[]),
            w(0x0b, 2, &[0x10, 0x03]),
            w(0x0c, 3, &[0x0d, 0x0b]),
            w(0x0d, 2, &[0x0c]), // a loop back to the selector
            w(0x15, 4, &[0x0c]),
            hp,
            unconnected,
        ];
        let path = output_path(&g).unwrap();
        let nids: Vec<u16> = path.iter().map(|h| h.nid).collect();
        assert_eq!(nids, vec![0x15, 0x0c, 0x0b, 0x03]);
        assert_eq!(path[1].index, Some(1));
        assert_eq!(path[2].index, Some(1));
    }

    #[test]
    fn no_path_when_pins_lead_nowhere_or_too_deep() {
        assert_eq!(output_path(&[w(3, 4, &[9])]), None);
        // A chain of seven mixers is beyond MAX_DEPTH.
        let mut g = vec![w(1, 4, &[10]), w(20, 0, &[])];
        for n in 10..17 {
            g.push(w(n, 2, &[n + 1]));
        }
        g.push(w(17, 2, &[20]));
        assert_eq!(output_path(&g), None);
    }

    #[test]
    fn input_path_from_the_converter_to_a_connected_input_pin() {
        let mut line_in = w(5, 4, &[]);
        line_in.pin_caps = PIN_CAP_INPUT;
        let mut unconnected = w(6, 4, &[]);
        unconnected.pin_caps = PIN_CAP_INPUT;
        unconnected.config = 1 << 30;
        // ADC 4 <- selector 7 <- (unconnected pin 6, line in 5); the DAC path is ignored.
        let g = vec![
            w(2, 0, &[]),
            w(3, 4, &[2]),
            w(4, 1, &[7]),
            unconnected,
            line_in,
            w(7, 3, &[6, 5]),
        ];
        let path = input_path(&g).unwrap();
        assert_eq!(
            path,
            vec![
                Hop {
                    nid: 4,
                    index: Some(0)
                },
                Hop {
                    nid: 7,
                    index: Some(1)
                },
                Hop {
                    nid: 5,
                    index: None
                }
            ]
        );
        assert_eq!(input_path(&g[..3]), None, "no input pin");
    }

    #[test]
    fn connection_ranges_are_expanded_and_bounded() {
        assert_eq!(expand_connections(&[2, 0x85], false, 16), vec![2, 3, 4, 5]);
        assert_eq!(expand_connections(&[0x85, 7], false, 16), vec![7]);
        assert_eq!(expand_connections(&[9, 0x83], false, 16), vec![9]);
        assert_eq!(expand_connections(&[1, 0xffff], true, 5).len(), 5);
    }
}
