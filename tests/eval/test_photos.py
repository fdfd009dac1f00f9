"""Boxes land where they belong on the scaled thumbnail, in their side's colour."""

import base64
import io

import numpy as np
from PIL import Image

from rmpl_jax.eval.photos import GOLD_COLOUR, PRED_COLOUR, THUMBNAIL_SIDE, draw_boxes, jpeg_data_uri
from rmpl_jax.m2e2.records import Box


def test_boxes_are_scaled_with_the_photo():
    photo = Image.new("RGB", (1440, 720), (255, 255, 255))
    thumb = draw_boxes(photo, gold=[("Attacker", Box(400, 200, 1200, 600))], pred=[("Target", Box(80, 80, 240, 400))])
    assert thumb.size == (THUMBNAIL_SIDE, THUMBNAIL_SIDE // 2)  # 1440 -> 360: a quarter
    pixels = np.asarray(thumb)
    # gold: left edge at x = 100, spanning y 50..150; the right edge at x = 300
    assert tuple(pixels[120, 100]) == GOLD_COLOUR and tuple(pixels[120, 299]) == GOLD_COLOUR
    assert tuple(pixels[120, 200]) == (255, 255, 255)  # inside the box: the photo
    # predicted: x 20..60, y 20..100; its role label sits at the bottom, inside the box
    assert tuple(pixels[60, 20]) == PRED_COLOUR and tuple(pixels[60, 59]) == PRED_COLOUR
    assert tuple(pixels[30, 40]) == (255, 255, 255)


def test_small_photos_are_not_enlarged_and_bad_boxes_do_not_fail():
    photo = Image.new("L", (200, 100), 128)  # grey-scale photos are drawn in colour
    thumb = draw_boxes(photo, gold=[], pred=[("Victim", Box(150, 90, 20, 5)), ("Place", Box(-50, -50, 5000, 5000))])
    assert thumb.size == (200, 100) and thumb.mode == "RGB"
    uri = jpeg_data_uri(thumb)
    assert uri.startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size == (200, 100)


def test_tags_of_boxes_sharing_a_corner_do_not_cover_each_other():
    photo = Image.new("RGB", (400, 400), (255, 255, 255))
    one = np.asarray(draw_boxes(photo, gold=[], pred=[("Giver", Box(100, 100, 300, 300))]))
    two = np.asarray(
        draw_boxes(photo, gold=[], pred=[("Giver", Box(100, 100, 300, 300)), ("Recipient", Box(100, 50, 300, 300))])
    )
    column = 92  # just inside both boxes' left edges, under their tags
    tagged = [int((frame[:, column] == PRED_COLOUR).all(axis=-1).sum()) for frame in (one, two)]
    assert tagged[1] >= 2 * tagged[0] - 2  # the second tag sits above the first, not on it
