"""The demo ACKB's content as plain Python data: categories, products, selling points, motions, scenes.

Everything here is hand-written and fictional (brands included), but shaped like real advertising
briefs: each product has exactly five concrete selling points, and each selling point carries the
wording used in clip captions (`feature`, read after "the <noun>'s"), a few retrieval tags, and the
small icon (`cue`) drawn next to the product in its clips. `kb.demo.build` turns this into the
interchange format; `kb.demo.clips` draws the products (`shape`, `colour`, `accent`, RGB).

Changing anything here changes the demo's fingerprint, so the next build renders everything again.
"""

from __future__ import annotations

from typing import Any

GENERATOR_VERSION = 2  # bump when rendering or planning changes in a way the data here does not show

CLIPS_PER_SELLING_POINT = 5
SELLING_POINTS_PER_PRODUCT = 5

CATEGORIES: list[dict[str, str]] = [
    {
        "key": "oral-care",
        "name": "Oral Care",
        "description": "Toothbrushes, toothpaste and other products for a clean, healthy mouth.",
    },
    {
        "key": "skin-care",
        "name": "Skin Care",
        "description": "Masks, sunscreens and creams that hydrate, protect and renew the skin.",
    },
    {
        "key": "hair-care",
        "name": "Hair Care",
        "description": "Shampoos and conditioners for clean, soft and manageable hair.",
    },
    {
        "key": "drinkware",
        "name": "Drinkware",
        "description": "Insulated bottles and travel mugs that keep drinks hot or cold on the go.",
    },
    {
        "key": "audio",
        "name": "Audio",
        "description": "Wireless earbuds, headphones and portable speakers.",
    },
]


def _sp(key: str, text: str, feature: str, tags: list[str], cue: str) -> dict[str, Any]:
    return {"key": key, "text": text, "feature": feature, "tags": tags, "cue": cue}


PRODUCTS: list[dict[str, Any]] = [
    {
        "key": "aquasonic-electric-toothbrush",
        "name": "AquaSonic Pro Electric Toothbrush",
        "brand": "AquaSonic",
        "category": "oral-care",
        "description": "A rechargeable sonic toothbrush with a slim handle and a travel charger.",
        "noun": "toothbrush",
        "shape": "toothbrush",
        "colour": (32, 150, 170),
        "accent": (240, 240, 245),
        "selling_points": [
            _sp("sonic-strokes", "40,000 sonic strokes per minute", "40,000 sonic strokes per minute",
                ["sonic cleaning", "plaque removal"], "wave"),
            _sp("soft-bristles", "Soft round-end bristles", "soft round-end bristles",
                ["soft bristles", "gentle"], "sparkle"),
            _sp("battery-30-days", "30-day battery life on one charge", "30-day battery life",
                ["battery life", "rechargeable"], "battery"),
            _sp("two-minute-timer", "Built-in 2-minute timer", "built-in two-minute timer",
                ["timer"], "clock"),
            _sp("pressure-sensor", "Pressure sensor protects gums", "gum-protecting pressure sensor",
                ["pressure sensor", "gum care"], "shield"),
        ],
    },
    {
        "key": "brightmint-whitening-toothpaste",
        "name": "BrightMint Whitening Toothpaste",
        "brand": "BrightMint",
        "category": "oral-care",
        "description": "A fluoride whitening toothpaste with a fresh mint flavour.",
        "noun": "toothpaste",
        "shape": "tube",
        "colour": (235, 245, 240),
        "accent": (20, 160, 120),
        "selling_points": [
            _sp("stain-removal", "Removes surface stains in 2 weeks", "stain-removing whitening formula",
                ["whitening", "stain removal"], "sparkle"),
            _sp("fluoride", "Fluoride cavity protection", "fluoride cavity protection",
                ["fluoride", "cavity protection"], "shield"),
            _sp("fresh-mint", "Fresh mint breath for 12 hours", "12-hour fresh mint breath",
                ["fresh breath", "mint"], "leaf"),
            _sp("enamel-safe", "Low-abrasion, enamel-safe formula", "enamel-safe low-abrasion paste",
                ["enamel safe"], "check"),
            _sp("recyclable-tube", "Fully recyclable tube", "fully recyclable tube",
                ["recyclable", "eco-friendly"], "leaf"),
        ],
    },
    {
        "key": "hydraglow-sheet-mask",
        "name": "HydraGlow Hyaluronic Sheet Mask",
        "brand": "HydraGlow",
        "category": "skin-care",
        "description": "A single-use facial sheet mask soaked in hyaluronic acid serum.",
        "noun": "sheet mask",
        "shape": "mask",
        "colour": (120, 190, 230),
        "accent": (250, 250, 252),
        "selling_points": [
            _sp("deep-hydration", "Hyaluronic acid deep hydration", "hyaluronic deep hydration serum",
                ["hydration", "hyaluronic acid"], "drop"),
            _sp("fifteen-minutes", "Works in 15 minutes", "quick 15-minute treatment",
                ["quick treatment"], "clock"),
            _sp("bamboo-sheet", "Soft bamboo-fibre sheet", "soft bamboo-fibre sheet",
                ["bamboo fibre", "soft"], "leaf"),
            _sp("fragrance-free", "Fragrance-free for sensitive skin", "fragrance-free sensitive-skin formula",
                ["fragrance free", "sensitive skin"], "heart"),
            _sp("instant-glow", "Visible glow after one use", "instant visible glow",
                ["glow", "radiance"], "sparkle"),
        ],
    },
    {
        "key": "sunshield-spf50-sunscreen",
        "name": "SunShield SPF 50 Sunscreen",
        "brand": "SunShield",
        "category": "skin-care",
        "description": "A lightweight mineral sunscreen lotion for face and body.",
        "noun": "sunscreen",
        "shape": "tube",
        "colour": (250, 190, 60),
        "accent": (230, 90, 40),
        "selling_points": [
            _sp("spf50", "SPF 50 broad-spectrum protection", "SPF 50 broad-spectrum protection",
                ["spf 50", "uv protection"], "sun"),
            _sp("water-resistant", "Water-resistant for 80 minutes", "80-minute water resistance",
                ["water resistant", "swimming"], "drop"),
            _sp("no-white-cast", "No white cast on any skin tone", "invisible no-white-cast finish",
                ["no white cast"], "check"),
            _sp("reef-safe", "Reef-safe mineral filters", "reef-safe mineral filters",
                ["reef safe", "mineral"], "leaf"),
            _sp("non-greasy", "Lightweight, non-greasy feel", "lightweight non-greasy texture",
                ["lightweight", "non-greasy"], "feather"),
        ],
    },
    {
        "key": "velvet-night-cream",
        "name": "Velvet Retinol Night Cream",
        "brand": "Velvet Lab",
        "category": "skin-care",
        "description": "A rich overnight cream with encapsulated retinol and ceramides.",
        "noun": "night cream",
        "shape": "jar",
        "colour": (150, 90, 160),
        "accent": (235, 205, 120),
        "selling_points": [
            _sp("retinol-renewal", "Encapsulated retinol overnight renewal", "overnight retinol renewal",
                ["retinol", "anti-aging"], "star"),
            _sp("ceramide-barrier", "Ceramides restore the moisture barrier", "ceramide moisture barrier",
                ["ceramides", "moisture barrier"], "shield"),
            _sp("dermatologist-tested", "Dermatologist tested", "dermatologist-tested gentle formula",
                ["dermatologist tested"], "check"),
            _sp("firmer-skin", "Visibly firmer skin in 4 weeks", "firming four-week results",
                ["firming"], "heart"),
            _sp("airless-jar", "Airless jar keeps the formula fresh", "airless freshness-keeping jar",
                ["airless jar"], "lock"),
        ],
    },
    {
        "key": "silkshine-argan-shampoo",
        "name": "Silk & Shine Argan Oil Shampoo",
        "brand": "Silk & Shine",
        "category": "hair-care",
        "description": "A sulfate-free shampoo with cold-pressed argan oil for dry hair.",
        "noun": "shampoo",
        "shape": "bottle",
        "colour": (200, 140, 60),
        "accent": (60, 40, 30),
        "selling_points": [
            _sp("argan-oil", "Argan oil nourishes dry hair", "nourishing argan oil",
                ["argan oil", "nourishing"], "drop"),
            _sp("sulfate-free", "Sulfate-free gentle cleanse", "sulfate-free gentle cleanse",
                ["sulfate free", "gentle"], "leaf"),
            _sp("color-safe", "Safe for colour-treated hair", "colour-safe formula",
                ["color safe"], "check"),
            _sp("frizz-control", "Frizz control for 48 hours", "48-hour frizz control",
                ["frizz control", "smooth hair"], "feather"),
            _sp("salon-scent", "Salon-fresh floral scent", "salon-fresh floral scent",
                ["fragrance", "floral"], "sparkle"),
        ],
    },
    {
        "key": "curldefine-leave-in-conditioner",
        "name": "CurlDefine Leave-In Conditioner",
        "brand": "CurlDefine",
        "category": "hair-care",
        "description": "A lightweight leave-in conditioner in a pump bottle for curly hair.",
        "noun": "conditioner",
        "shape": "pump",
        "colour": (230, 110, 140),
        "accent": (250, 245, 240),
        "selling_points": [
            _sp("defined-curls", "Defines curls without crunch", "soft defined curls",
                ["curl definition", "curly hair"], "wave"),
            _sp("detangling", "Detangles in seconds", "instant detangling slip",
                ["detangling"], "bolt"),
            _sp("heat-protect", "Heat protection up to 230 °C", "230-degree heat protection",
                ["heat protection"], "flame"),
            _sp("shea-butter", "Shea butter softness", "shea butter softness",
                ["shea butter", "softness"], "heart"),
            _sp("no-rinse", "No-rinse, lightweight hold", "lightweight no-rinse hold",
                ["no rinse", "lightweight"], "feather"),
        ],
    },
    {
        "key": "thermopeak-insulated-bottle",
        "name": "ThermoPeak Insulated Water Bottle",
        "brand": "ThermoPeak",
        "category": "drinkware",
        "description": "A 750 ml double-wall stainless steel bottle with a carry loop.",
        "noun": "water bottle",
        "shape": "tumbler",
        "colour": (40, 110, 200),
        "accent": (40, 40, 45),
        "selling_points": [
            _sp("cold-24h", "Keeps drinks cold for 24 hours", "24-hour cold retention",
                ["cold drinks", "insulated"], "snow"),
            _sp("leak-proof", "Leak-proof lid", "leak-proof lid",
                ["leak proof", "lid"], "lock"),
            _sp("vacuum-insulation", "Double-wall vacuum insulation", "double-wall vacuum insulation",
                ["vacuum insulation"], "shield"),
            _sp("bpa-free", "BPA-free stainless steel", "BPA-free stainless steel",
                ["bpa free", "stainless steel"], "check"),
            _sp("cup-holder", "Fits car cup holders", "cup-holder-friendly slim body",
                ["cup holder", "travel"], "star"),
        ],
    },
    {
        "key": "commuter-travel-mug",
        "name": "Commuter Travel Mug",
        "brand": "Commuter Co.",
        "category": "drinkware",
        "description": "A 400 ml insulated travel mug with a one-hand flip lid and handle.",
        "noun": "travel mug",
        "shape": "mug",
        "colour": (190, 50, 50),
        "accent": (30, 30, 30),
        "selling_points": [
            _sp("one-hand-lid", "One-hand flip lid", "one-hand flip lid",
                ["flip lid", "one hand"], "check"),
            _sp("hot-12h", "Keeps coffee hot for 12 hours", "12-hour heat retention",
                ["hot drinks", "coffee"], "flame"),
            _sp("spill-proof", "Spill-proof seal", "spill-proof seal",
                ["spill proof"], "lock"),
            _sp("dishwasher-safe", "Dishwasher safe", "dishwasher-safe build",
                ["dishwasher safe"], "drop"),
            _sp("ceramic-interior", "Ceramic-coated interior, no metal taste", "ceramic-coated interior",
                ["ceramic coating", "taste"], "star"),
        ],
    },
    {
        "key": "airbeat-wireless-earbuds",
        "name": "AirBeat Wireless Earbuds",
        "brand": "AirBeat",
        "category": "audio",
        "description": "True wireless earbuds with active noise cancellation and a pocket case.",
        "noun": "earbuds",
        "shape": "earbuds",
        "colour": (245, 245, 248),
        "accent": (40, 180, 230),
        "selling_points": [
            _sp("battery-30h", "30-hour battery life with the case", "30-hour battery life",
                ["battery life"], "battery"),
            _sp("anc", "Active noise cancellation", "active noise cancellation",
                ["noise cancelling", "anc"], "wave"),
            _sp("ipx5", "IPX5 sweat and splash resistance", "IPX5 sweat resistance",
                ["sweat resistant", "workout"], "drop"),
            _sp("secure-fit", "Secure ergonomic fit", "secure ergonomic fit",
                ["comfortable fit"], "heart"),
            _sp("fast-charge", "10-minute charge for 2 hours of play", "ten-minute fast charging",
                ["fast charging"], "bolt"),
        ],
    },
    {
        "key": "studiomax-headphones",
        "name": "StudioMax Over-Ear Headphones",
        "brand": "StudioMax",
        "category": "audio",
        "description": "Foldable over-ear Bluetooth headphones with memory-foam cushions.",
        "noun": "headphones",
        "shape": "headphones",
        "colour": (35, 35, 40),
        "accent": (200, 160, 90),
        "selling_points": [
            _sp("hi-res-drivers", "Hi-res 40 mm drivers", "hi-res 40 mm drivers",
                ["hi-res audio", "drivers"], "wave"),
            _sp("memory-foam", "Plush memory-foam ear cushions", "plush memory-foam cushions",
                ["memory foam", "comfort"], "heart"),
            _sp("foldable", "Foldable travel design", "foldable travel design",
                ["foldable", "travel"], "check"),
            _sp("multipoint", "Multipoint Bluetooth for two devices", "two-device multipoint Bluetooth",
                ["bluetooth", "multipoint"], "bolt"),
            _sp("battery-40h", "40-hour battery life", "40-hour battery life",
                ["battery life"], "battery"),
        ],
    },
    {
        "key": "pulse-portable-speaker",
        "name": "Pulse Portable Speaker",
        "brand": "Pulse",
        "category": "audio",
        "description": "A rugged cylindrical Bluetooth speaker with a carry strap.",
        "noun": "speaker",
        "shape": "speaker",
        "colour": (60, 160, 90),
        "accent": (25, 30, 30),
        "selling_points": [
            _sp("sound-360", "360-degree room-filling sound", "360-degree room-filling sound",
                ["360 sound", "loud"], "wave"),
            _sp("ip67", "IP67 waterproof and dustproof", "IP67 waterproof build",
                ["waterproof", "outdoor"], "drop"),
            _sp("stereo-pair", "Pair two speakers for stereo", "two-speaker stereo pairing",
                ["stereo pairing"], "bolt"),
            _sp("battery-20h", "20-hour playtime", "20-hour playtime",
                ["battery life", "playtime"], "battery"),
            _sp("carry-strap", "Built-in carry strap", "built-in carry strap",
                ["carry strap", "portable"], "star"),
        ],
    },
]

# Camera motion types. `tag` is the words used in clip tags; `phrases` open the clip captions.
MOTIONS: list[dict[str, Any]] = [
    {
        "key": "zoom_in",
        "description": "The camera pushes in: the picture expands from the centre and the product grows.",
        "tag": "zoom in",
        "phrases": ["Slow zoom in on", "Camera pushes in on", "Smooth zoom in on"],
    },
    {
        "key": "zoom_out",
        "description": "The camera pulls back: the picture contracts towards the centre, showing more scene.",
        "tag": "zoom out",
        "phrases": ["Slow zoom out from", "Camera pulls back from", "Smooth zoom out from"],
    },
    {
        "key": "pan_left",
        "description": "The camera turns left: the scene slides to the right across the frame.",
        "tag": "pan left",
        "phrases": ["Camera pans left across", "Smooth pan left over"],
    },
    {
        "key": "pan_right",
        "description": "The camera turns right: the scene slides to the left across the frame.",
        "tag": "pan right",
        "phrases": ["Camera pans right across", "Smooth pan right over"],
    },
    {
        "key": "tilt_up",
        "description": "The camera tilts up: the scene slides down the frame.",
        "tag": "tilt up",
        "phrases": ["Camera tilts up along", "Slow tilt up over"],
    },
    {
        "key": "tilt_down",
        "description": "The camera tilts down: the scene slides up the frame.",
        "tag": "tilt down",
        "phrases": ["Camera tilts down along", "Slow tilt down over"],
    },
    {
        "key": "orbit",
        "description": "The camera circles the product: the picture rotates about its centre.",
        "tag": "orbit",
        "phrases": ["Camera orbits around", "Rotating orbit shot of"],
    },
    {
        "key": "shake",
        "description": "Handheld, energetic camera: small random jolts from frame to frame.",
        "tag": "handheld shake",
        "phrases": ["Energetic handheld shot of", "Shaky handheld close-up of"],
    },
    {
        "key": "static",
        "description": "Locked-off camera: the picture holds still.",
        "tag": "static shot",
        "phrases": ["Still shot of", "Locked-off close-up of"],
    },
    {
        "key": "reveal",
        "description": "The camera holds while the product slides into the frame.",
        "tag": "reveal",
        "phrases": ["Slide-in reveal of", "Product reveal showing"],
    },
]

# Backgrounds: photographs shipped inside scikit-image (loaded offline, no download). Grey ones are
# tinted with `tint` (RGB multipliers). `phrase` is the scene in captions.
SCENES: list[dict[str, Any]] = [
    {"key": "coffee", "loader": "coffee", "phrase": "beside a coffee cup", "tint": None},
    {"key": "brick", "loader": "brick", "phrase": "against a brick wall", "tint": (1.0, 0.78, 0.62)},
    {"key": "grass", "loader": "grass", "phrase": "on fresh grass", "tint": (0.7, 1.0, 0.55)},
    {"key": "gravel", "loader": "gravel", "phrase": "on a gravel path", "tint": (0.95, 0.92, 0.85)},
    {"key": "rocket", "loader": "rocket", "phrase": "at a launch site", "tint": None},
    {"key": "stars", "loader": "hubble_deep_field", "phrase": "against a starry sky", "tint": None},
    {"key": "cat", "loader": "chelsea", "phrase": "next to a tabby cat", "tint": None},
]

NUM_FRAMES_CHOICES: tuple[int, ...] = (24, 30, 36, 42, 48)  # 2.0 .. 4.0 s at 12 fps
FPS = 12
CLIP_SIZE = 256

# ILLUSTRATES annotations: (status, probability, score range)
ILLUSTRATION_MIX: list[tuple[str, float, tuple[float, float]]] = [
    ("approved", 0.80, (0.70, 0.99)),
    ("proposed", 0.12, (0.40, 0.80)),
    ("rejected", 0.08, (0.05, 0.40)),
]
ANNOTATORS: tuple[str, ...] = ("demo-annotator-1", "demo-annotator-2", "demo-annotator-3")

# SAME_CLAIM relations between selling points of different products: (product, selling point,
# product, selling point, status, score, annotator). Approved only where the two really make the
# same claim in other words; proposed where an annotator could argue either way (the numbers or the
# sense differ); rejected where the wording is alike but the claims are not (what a text-similarity
# proposer gets wrong). A build keeps the rows whose two products it includes.
SAME_CLAIMS: list[tuple[str, str, str, str, str, float, str]] = [
    ("thermopeak-insulated-bottle", "leak-proof", "commuter-travel-mug", "spill-proof", "approved", 0.91, "demo-annotator-1"),
    ("airbeat-wireless-earbuds", "ipx5", "pulse-portable-speaker", "ip67", "approved", 0.84, "demo-annotator-2"),
    ("airbeat-wireless-earbuds", "battery-30h", "studiomax-headphones", "battery-40h", "approved", 0.88, "demo-annotator-3"),
    ("studiomax-headphones", "battery-40h", "pulse-portable-speaker", "battery-20h", "proposed", 0.79, "sar-model"),
    ("aquasonic-electric-toothbrush", "battery-30-days", "airbeat-wireless-earbuds", "battery-30h", "proposed", 0.74, "sar-model"),
    ("hydraglow-sheet-mask", "deep-hydration", "velvet-night-cream", "ceramide-barrier", "proposed", 0.71, "sar-model"),
    ("silkshine-argan-shampoo", "argan-oil", "curldefine-leave-in-conditioner", "shea-butter", "proposed", 0.69, "sar-model"),
    ("thermopeak-insulated-bottle", "cold-24h", "commuter-travel-mug", "hot-12h", "rejected", 0.86, "demo-annotator-2"),
    ("sunshield-spf50-sunscreen", "water-resistant", "airbeat-wireless-earbuds", "ipx5", "rejected", 0.66, "demo-annotator-1"),
    ("sunshield-spf50-sunscreen", "non-greasy", "curldefine-leave-in-conditioner", "no-rinse", "rejected", 0.62, "demo-annotator-3"),
    ("hydraglow-sheet-mask", "fragrance-free", "velvet-night-cream", "dermatologist-tested", "approved", 0.78, "demo-annotator-1"),
    ("studiomax-headphones", "foldable", "pulse-portable-speaker", "carry-strap", "approved", 0.76, "demo-annotator-2"),
    ("aquasonic-electric-toothbrush", "soft-bristles", "brightmint-whitening-toothpaste", "enamel-safe", "approved", 0.73, "demo-annotator-3"),
    ("silkshine-argan-shampoo", "frizz-control", "curldefine-leave-in-conditioner", "defined-curls", "approved", 0.74, "demo-annotator-1"),
    ("airbeat-wireless-earbuds", "secure-fit", "studiomax-headphones", "memory-foam", "proposed", 0.72, "sar-model"),
    ("thermopeak-insulated-bottle", "bpa-free", "commuter-travel-mug", "ceramic-interior", "proposed", 0.70, "sar-model"),
    ("studiomax-headphones", "multipoint", "pulse-portable-speaker", "stereo-pair", "rejected", 0.81, "demo-annotator-2"),
]

TIMESTAMP = "2026-01-01T00:00:00.000000Z"  # fixed created_at/updated_at: byte-stable output


def spec_data() -> dict[str, Any]:
    """Everything above as one JSON-able value (for the build fingerprint)."""
    return {
        "generator_version": GENERATOR_VERSION,
        "categories": CATEGORIES,
        "products": PRODUCTS,
        "motions": MOTIONS,
        "scenes": SCENES,
        "num_frames_choices": list(NUM_FRAMES_CHOICES),
        "fps": FPS,
        "clip_size": CLIP_SIZE,
        "illustration_mix": ILLUSTRATION_MIX,
        "annotators": list(ANNOTATORS),
        "same_claims": SAME_CLAIMS,
        "clips_per_selling_point": CLIPS_PER_SELLING_POINT,
        "timestamp": TIMESTAMP,
    }
