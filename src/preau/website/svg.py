"""Small inline SVG charts generated server-side (no chart library, no inline style: CSP-safe)."""

from __future__ import annotations

from markupsafe import Markup, escape


def bar_chart(points: list[tuple[str, int | None]], title: str, desc: str, *, width: int = 420,
              height: int = 180, uid: str = "c") -> Markup:
    """A vertical bar chart of ``(label, value)``; empty values are drawn as a gap labelled « – »."""
    n = max(len(points), 1)
    top, bottom, left = 22, 28, 8
    plot_h = height - top - bottom
    vmax = max([v for _, v in points if v is not None] or [1]) or 1
    slot = (width - 2 * left) / n
    bar = min(56.0, slot * 0.6)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
             f'aria-labelledby="{uid}-t {uid}-d" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(desc)}</desc>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - left}" y2="{top + plot_h}" class="axis" '
             f'stroke="#4a4a4a" stroke-width="1"/>']
    for i, (label, value) in enumerate(points):
        cx = left + slot * i + slot / 2
        if value is not None:
            h = plot_h * value / vmax
            y = top + plot_h - h
            parts.append(f'<rect x="{cx - bar / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'class="bar" fill="#1f5f8b"/>')
            parts.append(f'<text x="{cx:.1f}" y="{y - 5:.1f}" text-anchor="middle" class="value" '
                         f'fill="#161616" font-size="12">{value}</text>')
        else:
            parts.append(f'<text x="{cx:.1f}" y="{top + plot_h - 5:.1f}" text-anchor="middle" fill="#161616" '
                         f'font-size="12">–</text>')
        parts.append(f'<text x="{cx:.1f}" y="{height - 9}" text-anchor="middle" class="label" fill="#161616" '
                     f'font-size="12">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
