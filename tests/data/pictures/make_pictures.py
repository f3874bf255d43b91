"""Reference pictures for tests/test_picture.c, made with Pillow (9.4, as
Debian 12 ships it; libwebp 1.2.4, libjpeg-turbo 2.1.5), the library
diffusers' and Hugging Face datasets' image loading goes through:
Image.open(f).convert("RGB") is what a training script sees.

  cmyk.jpg       an Adobe CMYK JPEG as Pillow writes it (quality 95)
  cmyk_rgb.png   Pillow's RGB of it
  lossless.webp  a lossless WebP of source.png (exact pixels)
  lossy.webp     a lossy WebP (quality 80) with alpha
  lossy_rgb.png  Pillow's RGB of it (alpha dropped, as convert("RGB") does)
  anim.webp      an animated WebP of two frames (refused: one picture per file)

Run: python3 make_pictures.py (in this folder)."""
from PIL import Image

W, H = 37, 23
src = Image.new("RGB", (W, H))
src.putdata([((x * 7 + y * 3) % 256, (x * y * 5) % 256, (255 - x * 4 - y * 2) % 256) for y in range(H) for x in range(W)])
src.save("source.png")

cmyk = src.convert("CMYK")
cmyk.save("cmyk.jpg", quality=95)
Image.open("cmyk.jpg").convert("RGB").save("cmyk_rgb.png")

src.save("lossless.webp", lossless=True)
rgba = src.convert("RGBA")
rgba.putalpha(Image.new("L", (W, H), 128))
rgba.save("lossy.webp", quality=80)
Image.open("lossy.webp").convert("RGB").save("lossy_rgb.png")

frames = [src, src.transpose(Image.FLIP_LEFT_RIGHT)]
frames[0].save("anim.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
