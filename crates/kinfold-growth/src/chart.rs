//! A UK-WHO growth chart as SVG: the nine centile lines, every measurement coloured by the
//! agency that took it, and any NG75 fall drawn and labelled. Made to be embedded in the
//! liaison dashboard and read by a nurse: large type, colour-blind-safe colours, and a legend.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::{CENTILE_LINES, Measure, OLDEST, Sex, YOUNGEST, boundaries, value_for_sds};

/// One measurement on the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct ChartPoint {
    /// Chart age, decimal years.
    pub age: f64,
    /// The value, in the measure's unit.
    pub value: f64,
    /// Index into [`Chart::series`].
    pub series: usize,
}

/// A labelled path through measurements, e.g. an NG75 fall from where it began to now.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The (age, value) points it passes through, oldest first; the last is ringed.
    pub path: Vec<(f64, f64)>,
    /// What it says (written under the chart, clear of the data).
    pub text: String,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// What was measured.
    pub measure: Measure,
    /// Boy's or girl's chart.
    pub sex: Sex,
    /// The heading, e.g. "Weight: girl, born 2021-03-04".
    pub title: String,
    /// The series (agencies), in legend order.
    pub series: Vec<String>,
    /// The measurements.
    pub points: Vec<ChartPoint>,
    /// Falls and other notes.
    pub annotations: Vec<Annotation>,
    /// Lines printed under the chart (e.g. an agency whose measurements are missing).
    pub notes: Vec<String>,
}

/// A piece of a centile line: (age, value) points.
type Line = Vec<(f64, f64)>;

/// Okabe–Ito colours, distinguishable with the common colour-vision deficiencies.
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];
/// The stroke of the centile lines (the 50th is darker).
pub const CENTILE_COLOUR: RGBColor = RGBColor(150, 150, 150);
/// The stroke of the 50th centile.
pub const MEDIAN_COLOUR: RGBColor = RGBColor(90, 90, 90);
/// The colour of annotations.
pub const ALERT_COLOUR: RGBColor = RGBColor(200, 0, 0);

/// The fill colour of a series, as `#rrggbb` (for a legend outside the chart).
pub fn series_colour(series: usize) -> String {
    let RGBColor(r, g, b) = PALETTE[series % PALETTE.len()];
    format!("#{r:02X}{g:02X}{b:02X}")
}

/// The age range a chart shows: every point, from birth (or the earliest corrected age), with
/// a margin, within the reference.
fn age_range(points: &[ChartPoint]) -> (f64, f64) {
    let youngest = points.iter().map(|p| p.age).fold(0.0_f64, f64::min);
    let oldest = points.iter().map(|p| p.age).fold(1.0_f64, f64::max);
    let end = (oldest * 1.08 + 0.1).ceil().min(OLDEST);
    (youngest.max(YOUNGEST), end)
}

/// Draws the chart; an `Err` only if the drawing library fails.
pub fn render(chart: &Chart) -> Result<String, String> {
    let mut svg = String::new();
    draw(chart, &mut svg).map_err(|e| e.to_string())?;
    // A title and role for screen readers: plotters writes the root element on one line.
    let label = escape(&chart.title);
    let svg = svg.replacen(
        "xmlns=\"http://www.w3.org/2000/svg\">",
        &format!("xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"{label}\">\n<title>{label}</title>"),
        1,
    );
    Ok(svg)
}

fn draw(chart: &Chart, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let (start, end) = age_range(&chart.points);
    let measure = chart.measure;
    // Centile lines in pieces between the reference's joins.
    let mut cuts = vec![start];
    cuts.extend(boundaries().into_iter().filter(|b| *b > start && *b < end));
    cuts.push(end);
    let lines: Vec<(usize, Vec<Line>)> = CENTILE_LINES
        .iter()
        .enumerate()
        .map(|(index, (_, z))| {
            let pieces = cuts
                .windows(2)
                .map(|w| {
                    let (a, b) = (w[0], w[1] - 1e-6);
                    (0..=120)
                        .filter_map(|i| {
                            let age = a + (b - a) * f64::from(i) / 120.0;
                            value_for_sds(measure, chart.sex, age, *z).map(|v| (age, v))
                        })
                        .collect::<Vec<_>>()
                })
                .filter(|piece| !piece.is_empty())
                .collect();
            (index, pieces)
        })
        .collect();
    let values = lines
        .iter()
        .flat_map(|(_, pieces)| pieces.iter().flatten().map(|p| p.1))
        .chain(chart.points.iter().map(|p| p.value));
    let (low, high) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let pad = (high - low) * 0.04;
    let (low, high) = ((low - pad).max(0.0), high + pad);

    let height = 640 + 20 * u32::try_from(chart.notes.len() + chart.annotations.len()).unwrap_or(0);
    let root = SVGBackend::with_string(svg, (960, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (main, footer) = root.split_vertically(600);
    let mut plot = ChartBuilder::on(&main)
        .caption(&chart.title, ("sans-serif", 24))
        .margin(16)
        .margin_right(70)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(start..end, low..high)?;
    plot.configure_mesh()
        .x_desc("Age (years; corrected for prematurity while the charts correct)")
        .y_desc(format!("{} ({})", measure.label(), measure.unit()))
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(RGBColor(238, 238, 238))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;

    for (index, pieces) in &lines {
        let (label, _) = CENTILE_LINES[*index];
        let style = if label == "50th" {
            MEDIAN_COLOUR.stroke_width(2)
        } else {
            CENTILE_COLOUR.stroke_width(1)
        };
        for piece in pieces {
            plot.draw_series(LineSeries::new(piece.iter().copied(), style))?;
        }
        if let Some(last) = pieces.last().and_then(|p| p.last()) {
            plot.draw_series(std::iter::once(Text::new(
                label.to_owned(),
                (last.0, last.1),
                ("sans-serif", 13)
                    .into_font()
                    .color(&MEDIAN_COLOUR)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )))?;
        }
    }

    for annotation in &chart.annotations {
        let (Some(first), Some(last)) = (annotation.path.first(), annotation.path.last()) else {
            continue;
        };
        plot.draw_series(LineSeries::new(
            annotation.path.iter().copied(),
            ALERT_COLOUR.stroke_width(3),
        ))?;
        plot.draw_series(std::iter::once(Circle::new(
            *last,
            11,
            ALERT_COLOUR.stroke_width(3),
        )))?;
        // The start of the fall gets a ring of its own; the words go under the chart, where
        // they cannot cover a measurement.
        plot.draw_series(std::iter::once(Circle::new(
            *first,
            9,
            ALERT_COLOUR.stroke_width(2),
        )))?;
    }

    for (index, name) in chart.series.iter().enumerate() {
        let colour = PALETTE[index % PALETTE.len()];
        let points: Vec<(f64, f64)> = chart
            .points
            .iter()
            .filter(|p| p.series == index)
            .map(|p| (p.age, p.value))
            .collect();
        plot.draw_series(
            points
                .into_iter()
                .map(move |p| Circle::new(p, 6, colour.filled().stroke_width(1))),
        )?
        .label(name.as_str())
        .legend(move |(x, y)| Circle::new((x + 8, y), 6, colour.filled()));
    }
    if !chart.series.is_empty() {
        plot.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 200, 200))
            .label_font(("sans-serif", 15))
            .draw()?;
    }

    footer.draw(&Text::new(
        "UK-WHO growth reference: UK90 below 2 weeks and from 4 years, WHO 2006 from 2 weeks to 4 years. Centile lines 0.4th to 99.6th, 2/3 SD apart.",
        (16, 8),
        ("sans-serif", 13).into_font().color(&MEDIAN_COLOUR),
    ))?;
    let below = chart
        .annotations
        .iter()
        .map(|a| format!("Red line, ringed where it starts and ends: {}", a.text))
        .chain(chart.notes.iter().cloned());
    for (line, note) in below.enumerate() {
        let y = 30 + 20 * i32::try_from(line).unwrap_or(0);
        footer.draw(&Text::new(
            note.as_str(),
            (16, y),
            ("sans-serif", 15).into_font().color(&ALERT_COLOUR),
        ))?;
    }
    root.present()?;
    Ok(())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart() -> Chart {
        Chart {
            measure: Measure::Weight,
            sex: Sex::Female,
            title: "Weight: girl & <test>".into(),
            series: vec!["GP".into(), "A&E".into()],
            points: vec![
                ChartPoint {
                    age: 0.5,
                    value: 7.5,
                    series: 0,
                },
                ChartPoint {
                    age: 2.5,
                    value: 13.0,
                    series: 1,
                },
                ChartPoint {
                    age: 4.5,
                    value: 14.0,
                    series: 0,
                },
            ],
            annotations: vec![Annotation {
                path: vec![(2.5, 13.0), (4.5, 14.0)],
                text: "Fall of 3.1 centile spaces".into(),
            }],
            notes: vec!["School nursing did not answer".into()],
        }
    }

    #[test]
    fn the_chart_is_valid_svg_with_nine_centile_lines_and_every_point() {
        let svg = render(&chart()).expect("renders");
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        let texts: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or_default().trim().to_owned())
            .collect();
        for (label, _) in CENTILE_LINES {
            assert_eq!(
                texts.iter().filter(|t| *t == label).count(),
                1,
                "{label} in {texts:?}"
            );
        }
        // Each centile line is drawn in pieces split at 2 weeks, 2 years and 4 years (the
        // chart runs from birth to 5.x years: 4 pieces).
        let centile_strokes = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .filter(|n| matches!(n.attribute("stroke"), Some("#969696") | Some("#5A5A5A")))
            .count();
        assert_eq!(centile_strokes, 9 * 4);
        // Every point, plus one legend marker per series, in its agency's colour.
        let circles = |fill: &str| {
            doc.descendants()
                .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some(fill))
                .count()
        };
        assert_eq!(circles(&series_colour(0)), 2 + 1);
        assert_eq!(circles(&series_colour(1)), 1 + 1);
        // The fall's words are under the plot (which ends at y = 600), not on its data.
        let fall = doc
            .descendants()
            .find(|n| {
                n.has_tag_name("text")
                    && n.text()
                        .is_some_and(|t| t.contains("Fall of 3.1 centile spaces"))
            })
            .expect("the fall is described");
        let y: f64 = fall
            .attribute("y")
            .and_then(|y| y.parse().ok())
            .expect("a y position");
        assert!(y > 600.0, "below the plot: y = {y}");
        // Both ends of the fall are ringed in the alert colour.
        let rings = doc
            .descendants()
            .filter(|n| n.has_tag_name("circle") && n.attribute("fill") == Some("none"))
            .count();
        assert!(rings >= 2, "{rings} rings");
        assert!(texts.iter().any(|t| t == "School nursing did not answer"));
        assert!(
            texts.iter().any(|t| t == "A&E"),
            "escaped and read back: {texts:?}"
        );
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .expect("title");
        assert_eq!(title.text(), Some("Weight: girl & <test>"));
    }
}
