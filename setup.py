from setuptools import find_packages, setup

DEPLOY_REQUIRES = ['onnx==1.23.2', 'onnxruntime==1.32.0', 'onnxscript==0.7.2', 'onnx-ir==1.1.0', 'ml_dtypes==0.5.4',
                   'numpy<2']

setup(
    name='sparsevit',
    version='0.1.0',
    description='SparseViT (CVPR 2023) window activation pruning for Swin Transformer, as an mmdetection 2.x plugin',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['sparsevit', 'sparsevit.*']),
    # torch and mmcv-full are installed by tools/setup_env.sh (mmcv-full is built from source).
    install_requires=['mmdet==2.28.2', 'mmsegmentation==0.30.0', 'numpy<2', 'pycocotools', 'terminaltables',
                      'matplotlib'],
    extras_require=dict(
        search=['torchpack==0.3.1', 'mpi4py'],
        tests=['pytest'],
        # ONNX export of the backbone checked in onnxruntime (tools/export_onnx.py, tools/benchmark_backbone.py).
        # Versions that work with numpy<2 on Python 3.11 (newer onnx/onnxruntime/ml_dtypes may pull numpy 2, which
        # breaks mmcv 1.x); tools/setup_env.sh installs the same pins.
        deploy=DEPLOY_REQUIRES),
)
