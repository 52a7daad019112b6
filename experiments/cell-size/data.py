"""Dataset loading for the scale prototype: yields (dataset, id, image_path, boxes[(cls,x1,y1,x2,y2)])."""
import csv, os, glob
import xml.etree.ElementTree as ET
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
D = os.environ.get('ARFPN_DATA', os.path.join(HERE, '..', '..', '..', 'shared', 'data'))
# Synthetic smears: make_synthetic OUT/scale<S> --profile realistic --cell-scale S --png --seed 31
SYNTH = os.environ.get('CELL_SIZE_SYNTH', '/tmp/cell-size-synth')

def parse_xml(p):
    r = ET.parse(p).getroot()
    out = []
    for o in r.iter('object'):
        b = o.find('bndbox')
        v = [float(b.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax')]
        out.append((o.find('name').text.strip(), *v))
    fn = r.find('filename').text
    return fn, out

def items():
    for i in open(f'{D}/bccd/ImageSets/Main/test.txt').read().split():
        fn, b = parse_xml(f'{D}/bccd/Annotations/{i}.xml')
        yield 'BCCD', i, f'{D}/bccd/JPEGImages/{i}.jpg', b
    src = {r['id']: r['source_dataset'] for r in csv.DictReader(open(f'{D}/txl-pbc/source_map.csv'))}
    for i in open(f'{D}/txl-pbc/ImageSets/Main/test.txt').read().split():
        fn, b = parse_xml(f'{D}/txl-pbc/Annotations/{i}.xml')
        yield 'TXL-' + src[i], i, f'{D}/txl-pbc/JPEGImages/{fn}', b
    for s in ['0.5', '1', '2', '4']:
        d = f'{SYNTH}/scale{s}'
        for p in sorted(glob.glob(f'{d}/Annotations/*.xml')):
            fn, b = parse_xml(p)
            i = os.path.basename(p)[:-4]
            yield f'synth-{s}', i, f'{d}/JPEGImages/{i}.png', b

def load_rgb(p):
    return np.asarray(Image.open(p).convert('RGB'))

def box_sizes(boxes, cls=None):
    s = [np.sqrt(max(x2 - x1, 0) * max(y2 - y1, 0)) for c, x1, y1, x2, y2 in boxes if cls is None or c == cls]
    return np.array([v for v in s if v > 0])

def median_hi(v):
    """The project's median: sorted v[len/2]."""
    v = np.sort(v)
    return float(v[len(v) // 2]) if len(v) else None
