//! A minimal PNG writer (8-bit RGB, stored deflate blocks, CRC-32 and Adler-32) and the RTT
//! chart drawn with it. No text: the legend and the axis values are in the markdown report.

/// An RGB image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

/// An RGB colour.
pub type Rgb = [u8; 3];

impl Canvas {
    /// A `width` x `height` image filled with `bg`.
    pub fn new(width: u32, height: u32, bg: Rgb) -> Self {
        let n = width as usize * height as usize;
        Self {
            width,
            height,
            pixels: bg.iter().copied().cycle().take(n * 3).collect(),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The colour at (x, y), if inside.
    pub fn pixel(&self, x: u32, y: u32) -> Option<Rgb> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        Some([self.pixels[i], self.pixels[i + 1], self.pixels[i + 2]])
    }

    /// Sets (x, y); points outside are ignored.
    pub fn set(&mut self, x: i64, y: i64, c: Rgb) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.pixels[i..i + 3].copy_from_slice(&c);
    }

    /// Fills the rectangle [x0, x1) x [y0, y1), clipped.
    pub fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb) {
        for y in y0.min(y1)..y0.max(y1) {
            for x in x0.min(x1)..x0.max(x1) {
                self.set(x, y, c);
            }
        }
    }

    /// A horizontal line from x0 to x1 (inclusive) at y.
    pub fn hline(&mut self, x0: i64, x1: i64, y: i64, c: Rgb) {
        self.fill_rect(x0, y, x1 + 1, y + 1, c);
    }

    /// The image as a PNG file.
    pub fn encode_png(&self) -> Vec<u8> {
        let row = self.width as usize * 3;
        let mut raw = Vec::with_capacity((row + 1) * self.height as usize);
        for y in 0..self.height as usize {
            raw.push(0); // filter type None
            raw.extend_from_slice(&self.pixels[y * row..(y + 1) * row]);
        }
        let mut out = vec![0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
        let mut ihdr = Vec::with_capacity(13);
        ihdr.extend_from_slice(&self.width.to_be_bytes());
        ihdr.extend_from_slice(&self.height.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, no filter, no interlace
        chunk(&mut out, b"IHDR", &ihdr);
        chunk(&mut out, b"IDAT", &zlib_stored(&raw));
        chunk(&mut out, b"IEND", &[]);
        out
    }
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored (uncompressed) deflate blocks.
pub fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none())); // BFINAL, BTYPE 00
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

/// CRC-32 (IEEE 802.3, as PNG uses it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Adler-32 (zlib's checksum).
pub fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &x in chunk {
            a += u32::from(x);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    (b << 16) | a
}

/// Bar colours, one per series in order (the markdown report names them).
pub const PALETTE: [(Rgb, &str); 6] = [
    ([0x1f, 0x77, 0xb4], "blue"),
    ([0xff, 0x7f, 0x0e], "orange"),
    ([0x2c, 0xa0, 0x2c], "green"),
    ([0xd6, 0x27, 0x28], "red"),
    ([0x94, 0x67, 0xbd], "purple"),
    ([0x8c, 0x56, 0x4b], "brown"),
];

/// A grouped bar chart on a log10 scale: one group per x position, one bar per series
/// (`values[group][series]`, `None` = no bar). The y axis runs from `10^lo_exp` to
/// `10^hi_exp` with a grey line at every power of ten.
pub fn bar_chart(values: &[Vec<Option<f64>>], lo_exp: i32, hi_exp: i32) -> Canvas {
    const W: u32 = 960;
    const H: u32 = 480;
    const MARGIN: i64 = 20;
    let mut c = Canvas::new(W, H, [255, 255, 255]);
    let (left, right, top, bottom) = (MARGIN, i64::from(W) - MARGIN, MARGIN, i64::from(H) - MARGIN);
    let span = f64::from((hi_exp - lo_exp).max(1));
    let y_of = |v: f64| -> i64 {
        let frac = ((v.max(f64::MIN_POSITIVE).log10() - f64::from(lo_exp)) / span).clamp(0.0, 1.0);
        bottom - (frac * (bottom - top) as f64).round() as i64
    };
    for e in lo_exp..=hi_exp {
        c.hline(left, right, y_of(10f64.powi(e)), [200, 200, 200]);
    }
    let groups = values.len().max(1) as i64;
    let group_w = (right - left) / groups;
    for (g, series) in values.iter().enumerate() {
        let n = series.len().max(1) as i64;
        let bar_w = ((group_w - 16) / n).max(1);
        let x0 = left + g as i64 * group_w + 8;
        for (s, v) in series.iter().enumerate() {
            let Some(v) = v else { continue };
            let colour = PALETTE[s % PALETTE.len()].0;
            let x = x0 + s as i64 * bar_w;
            c.fill_rect(x + 1, y_of(*v), x + bar_w - 1, bottom, colour);
        }
    }
    c.hline(left, right, bottom, [0, 0, 0]);
    c.fill_rect(left, top, left + 1, bottom + 1, [0, 0, 0]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_reference_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(&[]), 1);
    }

    #[test]
    fn stored_deflate_round_trips() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        let z = zlib_stored(&data);
        assert_eq!(&z[..2], &[0x78, 0x01]);
        // Inflate the stored blocks by hand.
        let mut pos = 2;
        let mut out = Vec::new();
        loop {
            let last = z[pos] & 1 == 1;
            assert_eq!(z[pos] & 6, 0, "stored block");
            let len = u16::from_le_bytes([z[pos + 1], z[pos + 2]]) as usize;
            let nlen = u16::from_le_bytes([z[pos + 3], z[pos + 4]]);
            assert_eq!(!(len as u16), nlen);
            out.extend_from_slice(&z[pos + 5..pos + 5 + len]);
            pos += 5 + len;
            if last {
                break;
            }
        }
        assert_eq!(out, data);
        assert_eq!(&z[pos..], &adler32(&data).to_be_bytes());
    }

    #[test]
    fn png_has_valid_chunks() {
        let mut c = Canvas::new(3, 2, [1, 2, 3]);
        c.set(2, 1, [9, 9, 9]);
        c.set(-1, 5, [0, 0, 0]);
        assert_eq!(c.pixel(2, 1), Some([9, 9, 9]));
        assert_eq!(c.pixel(0, 0), Some([1, 2, 3]));
        let png = c.encode_png();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut pos = 8;
        let mut kinds = Vec::new();
        while pos < png.len() {
            let len = u32::from_be_bytes(png[pos..pos + 4].try_into().expect("len")) as usize;
            let body = &png[pos + 4..pos + 8 + len];
            let crc =
                u32::from_be_bytes(png[pos + 8 + len..pos + 12 + len].try_into().expect("crc"));
            assert_eq!(crc32(body), crc);
            kinds.push(String::from_utf8_lossy(&body[..4]).into_owned());
            pos += 12 + len;
        }
        assert_eq!(kinds, ["IHDR", "IDAT", "IEND"]);
        assert_eq!(&png[16..24], &[0, 0, 0, 3, 0, 0, 0, 2]);
    }

    #[test]
    fn bars_are_drawn_on_a_log_scale() {
        let c = bar_chart(
            &[vec![Some(10.0), None], vec![Some(1000.0), Some(1.0)]],
            0,
            4,
        );
        assert_eq!((c.width(), c.height()), (960, 480));
        // The first bar of the first group is coloured near the bottom of the plot.
        let bottom = 460 - 2;
        let x = 20 + 8 + 2;
        assert_eq!(c.pixel(x, bottom), Some(PALETTE[0].0));
        // A 10 µs bar reaches a quarter of the way up (10^1 of 10^0..10^4), no further.
        assert_eq!(c.pixel(x, 460 - 440 / 4 + 2), Some(PALETTE[0].0));
        assert_eq!(c.pixel(x, 460 - 440 / 4 - 5), Some([255, 255, 255]));
    }
}
