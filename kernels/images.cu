// Images on the device: patchify / unpatchify of NCHW f32 images, and decoding a batch of HWC u8
// images into normalised NCHW f32 with a per-image crop, bilinear resize and optional mirror (the
// loader's transform, PIL's pixel-centre convention).

// Position inside one flattened patch of pixel (c, y, x): order 0 = (channel, row, col), the patch
// embedding's weight order; order 1 = (row, col, channel), MAE's target order.
__device__ __forceinline__ int inner_index(int order, int channels, int patch, int c, int y, int x) {
    return order == 0 ? (c * patch + y) * patch + x : (y * patch + x) * channels + c;
}

// One thread per image element; `to_patches` picks the direction.
extern "C" __global__ void patchify(float* patches, float* images, int batch, int channels, int size, int patch, int order,
                                    int to_patches) {
    int grid = size / patch, patch_len = patch * patch * channels;
    u64 per = (u64)channels * size * size;
    GRID_STRIDE(e, (u64)batch * per) {
        u64 b = e / per;
        int within = (int)(e % per);
        int c = within / (size * size), y = (within / size) % size, x = within % size;
        u64 p = b * per + (u64)((y / patch) * grid + x / patch) * patch_len + inner_index(order, channels, patch, c, y % patch, x % patch);
        if (to_patches) patches[p] = images[e];
        else images[e] = patches[p];
    }
}

// out[n, c, oy, ox] from src[n] (HWC u8, height x width x channels); crops[n] = (x, y, w, h) in
// source pixels, flips[n] != 0 mirrors; value = pixel * mul[c] - sub[c].
extern "C" __global__ void render_images(float* out, const unsigned char* src, const float4* crops, const int* flips, int n,
                                         int height, int width, int channels, int size, float mul0, float mul1, float mul2,
                                         float sub0, float sub1, float sub2) {
    GRID_STRIDE(e, (u64)n * channels * size * size) {
        int ox = (int)(e % size), oy = (int)((e / size) % size), c = (int)((e / ((u64)size * size)) % channels);
        u64 img = e / ((u64)channels * size * size);
        float4 crop = crops[img];
        int sx_out = flips[img] ? size - 1 - ox : ox;
        float fx = fminf(fmaxf(crop.x + (sx_out + 0.5f) * (crop.z / size) - 0.5f, 0.0f), (float)(width - 1));
        float fy = fminf(fmaxf(crop.y + (oy + 0.5f) * (crop.w / size) - 0.5f, 0.0f), (float)(height - 1));
        int x0 = (int)floorf(fx), y0 = (int)floorf(fy);
        int x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1);
        float wx = fx - x0, wy = fy - y0;
        const unsigned char* base = src + img * (u64)height * width * channels;
        float top = base[((u64)y0 * width + x0) * channels + c] * (1.0f - wx) + base[((u64)y0 * width + x1) * channels + c] * wx;
        float bottom = base[((u64)y1 * width + x0) * channels + c] * (1.0f - wx) + base[((u64)y1 * width + x1) * channels + c] * wx;
        float mul = c == 0 ? mul0 : (c == 1 ? mul1 : mul2), sub = c == 0 ? sub0 : (c == 1 ? sub1 : sub2);
        out[e] = (top * (1.0f - wy) + bottom * wy) * mul - sub;
    }
}
