from setuptools import find_packages, setup

setup(
    name='sparsevit',
    version='0.1.0',
    description='SparseViT (CVPR 2023) window activation pruning for Swin Transformer, as an mmdetection 2.x plugin',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(include=['sparsevit', 'sparsevit.*']),
    # torch and mmcv-full are installed by tools/setup_env.sh (mmcv-full is built from source).
    install_requires=['mmdet==2.28.2', 'numpy<2', 'pycocotools', 'terminaltables', 'matplotlib'],
    extras_require=dict(search=['torchpack==0.3.1', 'mpi4py'], tests=['pytest']),
)
